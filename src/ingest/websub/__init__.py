"""WebSub (W3C Recommendation): push from publishers' hubs instead of waiting for a poll.

`discovery` finds a source's hub and topic while polling; `subscriptions` keeps the
subscription state in the store and talks to hubs; `inbox` is where accepted
notifications wait for the run that ingests them; `receiver` is the HTTP service hubs call.
Nothing here imports the run, the CLI or Airflow.
"""
