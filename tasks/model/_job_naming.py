"""How a job backend names the files of a job: its submission script's suffix and its log's name.

Reads and writes nothing. The run group's layout (`tasks.model._layout`) is layer 1 and cannot
ask a backend, so each backend hands its `JobNaming` to whoever lays out or reads job files
(`tasks.backends.job_naming(cluster)`, or `backend.naming`): the layout owns the stems
(`finetune`, `eval_epoch_1`, `site_check`), the backend the rest.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

JOB_ID_FIELD = "{job_id}"


class JobNaming(BaseModel):
    """A backend's file names: `script("finetune")` -> its script, `log("42")` -> job 42's log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    script_suffix: str  # after the stem, e.g. ".sh"
    log_name: str  # with one `{job_id}`, e.g. "job-{job_id}.log"; the log lands in the job's folder

    @field_validator("log_name")
    @classmethod
    def _one_job_id(cls, value: str) -> str:
        if value.count(JOB_ID_FIELD) != 1 or "/" in value or "*" in value:
            raise ValueError(f"{value!r}: a log name needs exactly one {JOB_ID_FIELD}, no '/' and no '*'")
        return value

    @field_validator("script_suffix")
    @classmethod
    def _suffix(cls, value: str) -> str:
        if not re.fullmatch(r"\.[A-Za-z0-9_.-]+", value):
            raise ValueError(f"{value!r}: a script suffix is a dot and a plain name, e.g. .sh")
        return value

    def script(self, stem: str) -> str:
        """The script file name of a job stem: `finetune` -> `finetune.sh`."""
        return f"{stem}{self.script_suffix}"

    def log(self, job_id: str) -> str:
        """The log file name of job `job_id`."""
        return self.log_name.replace(JOB_ID_FIELD, job_id)

    @property
    def log_glob(self) -> str:
        """A glob matching every job's log (`job-*.log`)."""
        return self.log("*")

    def job_id_of(self, path: Path | str) -> str | None:
        """The job id in a log file's name; None when the name is not one of this backend's logs."""
        head, _, tail = self.log_name.partition(JOB_ID_FIELD)
        name = Path(path).name
        if len(name) <= len(head) + len(tail) or not (name.startswith(head) and name.endswith(tail)):
            return None
        return name[len(head) : len(name) - len(tail)]
