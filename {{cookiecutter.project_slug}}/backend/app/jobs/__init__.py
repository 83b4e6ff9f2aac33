"""Background jobs: sent by the API, run by the worker process (`app.worker`).

- `broker`: the Redis stream the jobs wait in, and where their states and results are kept.
- `queue`: `JobQueue`, what the API sends jobs and reads their state through.
- `lifecycle`: each attempt's state, timeout, retry with a pause, and the dead letters.
- `request_ids`: the ids of the request that sent a job, carried to each of its log lines.
- `consumer`: the worker's loop that reads the stream and runs the jobs.
- `items`: the example jobs, on the same repository as the API; `names`: the jobs' names.
"""
