"""The promotion policy: when a new version takes the `champion` alias.

Every new version gets `challenger`. It also gets `champion` when
- it is the model's first version (there is nothing to compare with), or
- it beats the champion on `promotion_metric` by more than `min_improvement`, both scored on *this
  run's* eval rows (the champion's own logged number was measured on other rows, possibly other
  data, and is not comparable).

It does not when it has no eval score, when the champion could not be scored on these rows (a
different base, an unreadable model), or when the champion moved while this run was evaluating.
Each decision is recorded on the version (tags `promotion_*`), so a retried or re-run register
step repeats the recorded decision instead of deciding again. Manual promotions
(`llm-trainer promote`) are recorded the same way, with the reason the person gave.

Registry aliases only: MLflow's model stages are deprecated and never used.
"""

from __future__ import annotations

import getpass
import math
import time
from dataclasses import asdict, dataclass

CHAMPION = "champion"
CHALLENGER = "challenger"
DECISION_TAG = "promotion_decision"  # its presence marks a finished register step
# The decision recorded at registration when the policy promotes: the alias moves only once the
# backup is verified (stages/promote.py), then the decision reads `promoted`.
PROMOTE_AFTER_BACKUP = "promote_after_backup"


@dataclass
class PromotionDecision:
    promote: bool
    reason: str
    metric: str
    direction: str
    min_improvement: float
    challenger_value: float | None = None
    champion_value: float | None = None
    champion_version: str | None = None
    improvement: float | None = None

    def tags(self) -> dict[str, str]:
        tags = {
            DECISION_TAG: "promoted" if self.promote else "kept_champion",
            "promotion_reason": self.reason,
            "promotion_policy": f"{self.metric} {self.direction}, min_improvement {self.min_improvement:g}",
        }
        if self.champion_version is not None:
            tags["promotion_compared_with"] = self.champion_version
        if self.improvement is not None:
            tags["promotion_improvement"] = f"{self.improvement:.6g}"
        return tags

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and (math.isnan(value) or math.isinf(value)))


def decide(
    metric: str,
    direction: str,
    min_improvement: float,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: str | None,
) -> PromotionDecision:
    """The policy, as a pure function of the two scores (both on the same eval rows)."""
    base = dict(metric=metric, direction=direction, min_improvement=min_improvement, champion_version=champion_version)
    if challenger.get(metric) is not None and not _finite(challenger.get(metric)):
        return PromotionDecision(
            False, f"{metric} is {challenger[metric]}: a diverged model is never promoted", **base
        )  # not even as a first version: the stages refuse to register it, this is the policy's own guard
    if champion_version is None:
        return PromotionDecision(
            True, "first version of the model: no champion yet", **base, challenger_value=challenger.get(metric)
        )
    value = challenger.get(metric)
    if not _finite(value):
        return PromotionDecision(False, f"no {metric} for the new version (no eval rows?): the champion stays", **base)
    theirs = (champion or {}).get(metric)
    if not _finite(theirs):
        return PromotionDecision(
            False,
            f"the champion (version {champion_version}) could not be scored on this run's eval rows: "
            "the champion stays; promote by hand if you are sure",
            **base,
            challenger_value=value,
        )
    improvement = (theirs - value) if direction == "minimize" else (value - theirs)
    scores = f"{metric} {value:.4f} vs champion v{champion_version} {theirs:.4f} on the same rows"
    if improvement > min_improvement:
        reason = f"{scores}: better by {improvement:.4f} > min_improvement {min_improvement:g}"
        return PromotionDecision(
            True, reason, **base, challenger_value=value, champion_value=theirs, improvement=improvement
        )
    reason = (
        f"{scores}: {'better' if improvement > 0 else 'not better'} by {improvement:.4f}, needs > "
        f"{min_improvement:g}; the champion stays"
    )
    return PromotionDecision(
        False, reason, **base, challenger_value=value, champion_value=theirs, improvement=improvement
    )


def promote_manually(name: str, version: str, alias: str = CHAMPION, reason: str = "") -> str | None:
    """Point `alias` at `version` by hand, recording who, when, why and what it replaced. Returns the
    version the alias pointed to before (None if it was unset)."""
    from trainer import registry

    registry.model_version(name, version)  # a clear error when the version does not exist
    previous = move_alias(
        name, str(version), alias, f"manual ({_user()})", reason or "manual promotion (no reason given)"
    )
    if alias == CHAMPION:
        registry.set_version_tags(name, str(version), {DECISION_TAG: "promoted_manually"})
    return previous


def move_alias(name: str, version: str, alias: str, by: str, reason: str) -> str | None:
    """Point `alias` at `version` and record on the version when, by whom, why and what it replaced."""
    from trainer import registry

    previous = registry.get_alias_version(name, alias)
    registry.set_alias(name, alias, version)
    registry.set_version_tags(
        name,
        version,
        {
            f"{alias}_since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            f"{alias}_previous": previous or "",
            f"{alias}_set_by": by,
            f"{alias}_reason": reason,
        },
    )
    return previous


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def decide_for_run(
    metric: str,
    direction: str,
    min_improvement: float,
    auto_promote: bool,
    metrics: dict[str, float],
    scored_champion: str | None,
    champion_metrics: dict[str, float] | None,
    current_champion: str | None,
    scoring_note: str = "",
) -> PromotionDecision:
    """decide(), given what evaluation scored and who is champion now, with auto_promote applied."""
    if current_champion is not None and scored_champion not in (None, current_champion):
        return PromotionDecision(
            False,
            f"the champion moved from version {scored_champion} to {current_champion} while this run was evaluating; "
            "the new champion was not scored on these rows, so it stays",
            metric,
            direction,
            min_improvement,
            challenger_value=metrics.get(metric),
            champion_version=current_champion,
        )
    decision = decide(
        metric,
        direction,
        min_improvement,
        metrics,
        champion_metrics if scored_champion == current_champion else None,
        current_champion,
    )
    if current_champion is not None and scored_champion is None and scoring_note:
        decision.reason = f"{decision.reason} ({scoring_note})"
    if decision.promote and current_champion is not None and not auto_promote:
        decision.promote = False
        decision.reason = (
            f"{decision.reason}; auto_promote is off, so the champion stays (promote by hand with "
            "`llm-trainer promote`)"
        )
    return decision
