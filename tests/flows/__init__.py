"""The Prefect flows of flows/, through Prefect's test harness."""
