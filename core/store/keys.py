"""Every Redis key cronium uses, in one place (layout: docs/architecture.md, "State")."""
from __future__ import annotations

from cronium.sidecar.variable_script import namespace_keys


class Keys:
    def __init__(self, prefix: str):
        self.prefix = prefix

    def execution(self, execution_id: str) -> str:
        return f"{self.prefix}exec:{execution_id}"

    def sidecar_results(self, execution_id: str) -> str:
        """The hash the sidecar writes (`output`, `condition`); it may only read the record itself."""
        return f"{self.prefix}exec:{execution_id}:out"

    def variables(self, namespace: str) -> str:
        return self.variable_hashes(namespace)[0]

    def variable_hashes(self, namespace: str) -> tuple[str, str, str]:
        """Values, versions and meta hashes of a namespace (cronium.sidecar.variable_script)."""
        return namespace_keys(self.prefix, namespace)

    def logs(self, execution_id: str) -> str:
        return f"{self.prefix}logs:{execution_id}"

    @property
    def executions(self) -> str:
        return f"{self.prefix}executions"

    @property
    def live(self) -> str:
        """Set of executions whose status is not final (what the reaper's record sweep looks at)."""
        return f"{self.prefix}live"

    def owner(self, owner: str) -> str:
        return f"{self.prefix}owner:{owner}"

    @property
    def pool_claims(self) -> str:
        """Hash: pooled object id -> the execution that claimed it (store/pool_claims.py)."""
        return f"{self.prefix}pool:claims"

    def acl_user(self, execution_id: str, attempt_tag: str = "") -> str:
        """`cronium-<execution>.<attempt tag>`: one user per attempt, so that a stale attempt's
        cleanup never deletes a newer attempt's credentials (`acl_user("")` is the common prefix)."""
        return f"cronium-{execution_id}" + (f".{attempt_tag}" if attempt_tag else "")

    @staticmethod
    def acl_user_execution(user: str) -> str:
        """The execution id an ACL user name (from `acl_user`) belongs to."""
        return user.removeprefix("cronium-").partition(".")[0]

    # --- deployments (store/deployments.py) ---------------------------------------------------
    @property
    def deployments(self) -> str:
        return f"{self.prefix}deployments"

    def deployment(self, name: str) -> str:
        return f"{self.prefix}deployment:{name}"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}jobs"

    def job(self, name: str) -> str:
        return f"{self.prefix}job:{name}"

    def script(self, digest: str) -> str:
        return f"{self.prefix}script:{digest}"

    @property
    def deploy_generation(self) -> str:
        return f"{self.prefix}deploy:generation"

    # --- queue (store/queue.py) ---------------------------------------------------------------
    @property
    def queue(self) -> str:
        return f"{self.prefix}queue"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}queue:dead"

    @property
    def delayed(self) -> str:
        return f"{self.prefix}queue:delayed"

    def active(self, job: str) -> str:
        return f"{self.prefix}active:{job}"

    def cancel(self, execution_id: str) -> str:
        return f"{self.prefix}cancel:{execution_id}"

    @property
    def cancel_channel(self) -> str:
        return f"{self.prefix}cancel"

    @property
    def owner_pattern(self) -> str:
        return f"{self.prefix}owner:*"

    # --- schedules (store/schedules.py) -------------------------------------------------------
    @property
    def scheduler_lease(self) -> str:
        return f"{self.prefix}scheduler:leader"

    def schedule_state(self, job: str) -> str:
        return f"{self.prefix}schedule:{job}"

    # --- per-execution uids (store/uids.py) ---------------------------------------------------
    def uid_claim(self, uid: int | str) -> str:
        """`uid:<uid>`: which execution attempt holds the uid (JSON: claim, execution, owner, deadline)."""
        return f"{self.prefix}uid:{uid}"

    @property
    def uid_claim_pattern(self) -> str:
        return f"{self.prefix}uid:*"

    def uid_of(self, claim: str) -> str:
        """`uid-of:<execution>.<attempt tag>`: the uid a claim holds (so claiming twice gives the same)."""
        return f"{self.prefix}uid-of:{claim}"

    @property
    def uid_cursor(self) -> str:
        """Where the next search for a free uid starts, so freed uids are reused last."""
        return f"{self.prefix}uid-cursor"
