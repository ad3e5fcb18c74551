"""The MLflow side of the pipeline: runs, metrics, the registered pyfunc model, versions and
aliases, registry URIs, lineage and promotion. The only package that imports mlflow.

Callers use the package face, `from trainer import registry; registry.set_tags(run_id, ...)`;
the modules behind it are split by concern (client, runs, metrics, pyfunc, versions, uris).
"""

from trainer.registry.client import client, ensure_experiment, mlflow_module, ui_command
from trainer.registry.metrics import flush, metrics_sink
from trainer.registry.pyfunc import (
    EMBED_BASE_MAX_BYTES,
    log_adapter_model,
    save_adapter_model,
)
from trainer.registry.runs import (
    END_REASON_TAG,
    RUN_KEY_TAG,
    artifact_location,
    close_orphaned_runs,
    create_run,
    end_run_by_key,
    finish_run,
    get_or_create_run,
    get_run,
    latest_runs,
    log_artifact,
    log_dataset,
    log_metrics,
    log_table,
    log_text,
    metric_history,
    run_tags,
    set_parent_run,
    set_tags,
    settings_hash,
    settings_params,
)
from trainer.registry.uris import (
    download_model_adapter,
    model_files,
    parse_model_uri,
    resolve_registered,
)
from trainer.registry.versions import (
    alias_is_unset,
    find_restored_version,
    find_version_for_run,
    get_alias_version,
    model_version,
    model_versions,
    set_alias,
    set_version_tags,
    versions_of_run,
)
