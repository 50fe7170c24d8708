"""One MLflow run: flattened params, buffered metrics written in batches, tags, artifacts, status.

A single ``log_metric`` into the sqlite store costs about 20 ms, which would dominate a tiny
model's step, so metrics are buffered and written with ``log_batch`` at flush points.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from tinygpt.errors import TinyGPTError
from tinygpt.timing import clock

T = TypeVar("T")
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys for MLflow params; enum settings by value (``self``, not ``Policy.self``)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v.value if isinstance(v, Enum) else v
    return out


def resolve_uri(uri: str | None) -> str:
    if uri:
        return uri
    import mlflow

    # MLflow's own default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory.
    return mlflow.get_tracking_uri()


def _check_reachable(uri: str, setting: str) -> None:
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).read()
    except (urllib.error.URLError, OSError) as e:
        raise TinyGPTError(
            f"{setting}={uri} is unreachable ({e}): start the server "
            f"(mlflow server --backend-store-uri ...), fix {setting}, or leave it unset to "
            "use the local sqlite store"
        ) from None


def with_retry(fn: Callable[[], T], attempts: int = 8) -> T:
    """Retry sqlite lock contention from parallel jobs with exponential backoff."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:  # MLflow wraps sqlite's OperationalError in several types
            if "locked" not in str(e).lower() or i == attempts - 1:
                raise
            time.sleep(0.05 * 2**i)
    raise AssertionError("unreachable")


def owner_tags() -> dict[str, str]:
    """The process a run belongs to while RUNNING: how a later sweep tells a dead run."""
    return {"host": socket.gethostname(), "pid": str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class Store:
    """A connected MLflow store and the experiment runs go to."""

    client: Any
    experiment_id: str
    uri: str

    @classmethod
    def connect(cls, uri: str | None, experiment: str, setting: str = "tracking.uri") -> Store:
        """Fail fast, with a clear message naming ``setting``, on an unreachable server or a
        foreign store."""
        from mlflow.tracking import MlflowClient

        uri = resolve_uri(uri)
        _check_reachable(uri, setting)
        try:
            client = MlflowClient(tracking_uri=uri)
            exp_id = with_retry(lambda: ensure_experiment(client, experiment))
        except TinyGPTError:
            raise
        except Exception as e:
            raise TinyGPTError(
                f"cannot open the MLflow store at {uri}: {str(e).splitlines()[0]} — point "
                f"{setting} at an MLflow store (sqlite:///path.db, http://host:port)"
            ) from None
        return cls(client, exp_id, uri)

    def reap_dead_runs(self) -> list[str]:
        """Close as KILLED every RUNNING run whose process, on this host, is gone (kill -9, the
        OOM killer, a crashed worker): nothing else would ever close it. Returns their names."""
        host, reaped = socket.gethostname(), []
        for r in self.find_runs("attributes.status = 'RUNNING'"):
            tags = r.data.tags
            if tags.get("host") != host or not tags.get("pid", "").isdigit():
                continue
            pid = int(tags["pid"])
            if pid == os.getpid() or _alive(pid):
                continue
            why = f"process {pid} on {host} died without closing the run; marked KILLED later"
            with_retry(lambda r=r, why=why: self.client.set_tag(r.info.run_id, "error", why))
            with_retry(lambda r=r: self.client.set_terminated(r.info.run_id, status="KILLED"))
            reaped.append(r.info.run_name)
        return reaped

    def find_runs(self, filter_string: str) -> list[Any]:
        """Runs of the experiment matching an MLflow filter string, newest first."""
        return with_retry(
            lambda: self.client.search_runs(
                [self.experiment_id],
                filter_string=filter_string,
                order_by=["attributes.start_time DESC"],
                max_results=10000,
            )
        )


def monitor_run(
    run_id: str, uri: str | None, interval: float, resumed: bool, node_id: str | None = None
) -> Callable[[], None]:
    """MLflow's system-metrics monitor on ``run_id``, from any process of the job: one per node
    of a multi-node job, its metrics under ``system/<node_id>/``. Returns its stop function."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    monitor = SystemMetricsMonitor(
        run_id,
        sampling_interval=interval,
        resume_logging=resumed,
        tracking_uri=uri,
        node_id=node_id,
    )
    monitor.start()
    return monitor.finish


class Tracker:
    """A run in an MLflow store; ``Tracker.disabled()`` gives one that records nothing."""

    def __init__(self, client: Any | None, run_id: str | None, uri: str | None = None) -> None:
        self.client, self.run_id, self.uri = client, run_id, uri
        self._buffer: list[Any] = []
        self.seconds = 0.0  # wall time spent writing to the store

    @classmethod
    def disabled(cls) -> Tracker:
        return cls(None, None)

    @property
    def enabled(self) -> bool:
        return self.client is not None

    @classmethod
    def start(
        cls,
        store: Store,
        run_name: str | None,
        tags: Mapping[str, str],
        run_id: str | None = None,
        parent_run_id: str | None = None,
    ) -> Tracker:
        """Start a run (or reopen ``run_id`` when resuming), nested under ``parent_run_id``."""
        client = store.client
        if run_id is not None:
            with_retry(lambda: client.update_run(run_id, status="RUNNING"))
            reopened = {
                **owner_tags(),
                **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {}),
            }
            for key, value in reopened.items():
                with_retry(lambda k=key, v=value: client.set_tag(run_id, k, v))
        else:
            all_tags = {**tags, **owner_tags()}
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            run = with_retry(
                lambda: client.create_run(store.experiment_id, run_name=run_name, tags=all_tags)
            )
            run_id = run.info.run_id
        return cls(client, run_id, store.uri)

    def _timed(self, fn: Callable[[], T], phase: str = "tracking") -> T:
        t0 = time.perf_counter()
        try:
            with clock.phase(phase):
                return with_retry(fn)
        finally:
            self.seconds += time.perf_counter() - t0

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for chunk in _chunks(items, MAX_PARAMS_PER_BATCH):
            self._timed(lambda c=chunk: self.client.log_batch(self.run_id, params=c))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        self._timed(lambda: self.client.log_batch(self.run_id, tags=items))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Buffered: nothing reaches the store until ``flush``."""
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._buffer += [Metric(k, float(v), now, step) for k, v in metrics.items()]

    def flush(self) -> None:
        if not self.enabled or not self._buffer:
            return
        pending, self._buffer = self._buffer, []
        for chunk in _chunks(pending, MAX_METRICS_PER_BATCH):
            self._timed(lambda c=chunk: self.client.log_batch(self.run_id, metrics=c))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.enabled and Path(path).exists():
            self._timed(lambda: self.client.log_artifact(self.run_id, str(path), artifact_path))

    def log_model(
        self, model: Any, tokenizer_path: Path, register_as: str | None = None
    ) -> str | None:
        """The model as a text-in, text-out MLflow pyfunc (``tinygpt.serving``) attached to this
        run, registered as ``register_as`` if given; returns its URI."""
        if not self.enabled:
            return None
        import tempfile

        import mlflow
        import numpy
        import pandas
        import torch

        from tinygpt.serving import log_text_model

        requirements = [
            f"torch=={torch.__version__.split('+')[0]}",
            f"mlflow=={mlflow.__version__}",
            f"numpy=={numpy.__version__}",
            f"pandas=={pandas.__version__}",
        ]
        if json.loads(Path(tokenizer_path).read_text(encoding="utf-8"))["kind"] == "hf":
            import tokenizers

            requirements.append(f"tokenizers=={tokenizers.__version__}")

        def log() -> str:
            # The fluent API needs a global URI; set_tracking_uri also exports it to the
            # environment, so put both back afterwards.
            previous_env = os.environ.get("MLFLOW_TRACKING_URI")
            previous = mlflow.get_tracking_uri()
            mlflow.set_tracking_uri(self.uri)
            try:
                with mlflow.start_run(run_id=self.run_id), tempfile.TemporaryDirectory() as tmp:
                    return log_text_model(
                        model, Path(tokenizer_path), Path(tmp), requirements, register_as
                    )
            finally:
                mlflow.set_tracking_uri(previous)
                if previous_env is None:
                    os.environ.pop("MLFLOW_TRACKING_URI", None)
                else:
                    os.environ["MLFLOW_TRACKING_URI"] = previous_env

        return self._timed(log, phase="model logging")

    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None:
        if self.enabled and Path(directory).is_dir():
            self._timed(
                lambda: self.client.log_artifacts(self.run_id, str(directory), artifact_path)
            )

    def monitor_system(
        self, interval: float, resumed: bool, node_id: str | None = None
    ) -> Callable[[], None]:
        """Start MLflow's system-metrics monitor on this run; returns the function stopping it."""
        if not self.enabled:
            return lambda: None
        return monitor_run(self.run_id, self.uri, interval, resumed, node_id)

    def browse_hint(self, sweep: bool = False) -> str:
        """How to open this run (or, for a sweep's parent, its experiment) in the MLflow UI."""
        if not self.enabled:
            return ""
        exp = with_retry(lambda: self.client.get_run(self.run_id)).info.experiment_id
        # "Model training" mode: the UI otherwise opens on the GenAI overview, empty for us.
        page = (
            f"#/experiments/{exp}/runs{'' if sweep else '/' + self.run_id}"
            "?workflowType=machine_learning"
        )
        uri = self.uri or ""
        if uri.startswith(("http://", "https://")):
            return f"browse it at {uri.rstrip('/')}/{page}"
        return (
            f"browse it: cd {os.getcwd()} && mlflow ui --backend-store-uri {uri}   then "
            f"http://127.0.0.1:5000/{page}"
        )

    def close(self, status: str) -> None:
        """Flush and mark the run FINISHED, FAILED or KILLED; never loses buffered metrics."""
        if not self.enabled:
            return
        try:
            self.flush()
        finally:
            self._timed(lambda: self.client.set_terminated(self.run_id, status=status))


def ensure_experiment(client: Any, name: str) -> str:
    """Get or create the experiment; tolerate another process creating it at the same moment."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name)
        except MlflowException:
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise TinyGPTError(
            f"experiment '{name}' is deleted in this store: restore it "
            f"(mlflow experiments restore --experiment-id {exp.experiment_id}) or choose "
            "another tracking.experiment"
        )
    return exp.experiment_id
