"""What to watch: `/metrics` in the Prometheus text format, the same from every web process.

Three sources make one scrape:
- requests (count and latency per route) are counted by each web process with
  prometheus-client; under gunicorn's several processes in its multiprocess mode (files in
  PROMETHEUS_MULTIPROC_DIR, a folder `serve` makes), so whichever process answers speaks for all;
- imports, the import queue and pending webhook deliveries are read from the database at each
  scrape (`collector.py`): the jobs and deliveries tables are the truth already;
- webhook attempts (outcome and latency) are counted by the workers in memory and pushed
  through the database every second (`pushed.py`): workers serve no port of their own.
"""
