"""Tests of tasks/training: finetune.yaml rendering and `tune validate`, prior torchtune logs, the tiny example."""
