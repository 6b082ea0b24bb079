"""Use cases shared by the API and the services (docs/development.md "Where a query belongs").

Each function here is one transaction's worth of work on an execution or an inquiry: run an
action, dispatch, finish, retry an execution, take back a dead worker's executions; open, answer
and expire an inquiry. Cancel and re-run may reach into a workflow run, so they live above this
package, with the workflow engine (:mod:`attune.workflow.engine.requests`).

The rule: **the caller opens the transaction** (``async with db.transaction() as session``) and
passes the session; an operation never opens a session, commits or publishes on its own. Reads
and writes go through :mod:`attune.db.repos`, messages are staged in the outbox in that same
transaction, so the row and its message commit together. A caller that needs several operations
to be atomic runs them in one transaction.
"""
