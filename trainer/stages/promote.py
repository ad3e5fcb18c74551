"""Promote: apply the promotion decision recorded at registration, once the backup is verified.

The order is the point: register the version (`challenger`), back it up and verify the copy, and
only then move `champion`. A failed backup leaves the old champion standing and the new version a
challenger whose decision reads `promote_after_backup`; a champion always has a verified backup.

The champion the decision was made against is recorded on the version (`promotion_compared_with`,
empty for a first version). If another run moved the alias while this one was backing up, the new
champion was never compared with this version, so it stays (`kept_champion`, with the reason).
Idempotent: a retry after the alias moved only records the outcome.
"""

from __future__ import annotations

from dataclasses import replace

from trainer import registry
from trainer.registry.promotion import CHAMPION, DECISION_TAG, PROMOTE_AFTER_BACKUP, move_alias
from trainer.stages.register import RegisteredModel
from trainer.storage.backup import BackupManifest


def promote_for_run(run_id: str, registered: RegisteredModel, manifest: BackupManifest) -> RegisteredModel:
    """Move `champion` to the version when its recorded decision says so; the outcome on the version and
    the run. `manifest` is the verified backup this promotion rests on."""
    name, version = registered.name, registered.version
    tags = registry.model_version(name, version).tags
    decision, reason = tags.get(DECISION_TAG, ""), tags.get("promotion_reason", registered.promotion)
    if decision == PROMOTE_AFTER_BACKUP:
        current = registry.get_alias_version(name, CHAMPION)
        compared = tags.get("promotion_compared_with") or None
        if current not in (compared, version):
            decision = "kept_champion"
            reason = (
                f"{reason}; but the champion moved from version {compared or 'none'} to {current} while this run "
                "was backing up, and the new champion was not compared with it, so it stays"
            )
        else:
            if current != version:  # not moved yet (a retry finds it moved and only records the outcome)
                move_alias(
                    name, version, CHAMPION, "promotion policy", f"{reason} (backup verified: {manifest.location})"
                )
            decision = "promoted"
        registry.set_version_tags(name, version, {DECISION_TAG: decision, "promotion_reason": reason})
        registry.set_tags(run_id, {DECISION_TAG: decision, "promotion_reason": reason})
    aliases = sorted(registry.model_version(name, version).aliases)
    return replace(registered, aliases=aliases, promoted=decision == "promoted", promotion=reason)
