"""
Where TensorRT plans live and how they are written: a writable cache directory, atomic files, one builder at a time.

* Default directory ``$ROS_HOME/fusion_ros/engines`` (ROS_HOME defaults to ``~/.ros``, as
  in ROS 2): a model may be installed read-only (under /opt), so plans never go beside it
  unless ``engine.path`` says so. The default file name carries the graph's name and the
  start of its sha256, so two models of the same name never share a plan.
* Every file (plan, sidecar, timing cache) is written to a temporary file unique to the
  writer in the target's directory, then renamed over the target: a reader sees the old
  file or the new one, never half of one, and concurrent writers never share a temp name.
* The old sidecar is removed before a new plan is renamed in, and the new sidecar written
  after it: a crash in between leaves a plan without a sidecar (rebuilt next time), never a
  new plan described by an old key.
* ``build_lock`` holds an exclusive lock file beside the plan while the cache is checked and
  the plan built, so two nodes configuring with the same model build it once: the second
  waits, then finds the first one's plan and loads it.
"""

from contextlib import contextmanager, suppress
import fcntl
import json
import os
from pathlib import Path
import tempfile
from typing import Any, Callable, Iterator, Optional


def engine_dir() -> Path:
    """$ROS_HOME/fusion_ros/engines, ROS_HOME defaulting to ~/.ros."""
    home = os.environ.get('ROS_HOME') or os.path.join('~', '.ros')
    return Path(home).expanduser() / 'fusion_ros' / 'engines'


def default_plan_path(graph: Path, sha256: str, folder: Optional[Path] = None) -> Path:
    """<folder or engine_dir()>/<graph stem>-<12 hex of its sha256>.engine."""
    return Path(folder or engine_dir()) / f'{Path(graph).stem}-{sha256[:12]}.engine'


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temp file unique to this writer, then rename it over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)        # mkstemp makes 0600; other users' nodes must read shared plans
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def store_plan(plan_path: Path, plan: bytes, sidecar: Path, key: dict[str, Any]) -> None:
    """Replace a plan and its sidecar so that no crash leaves a plan described by another plan's key."""
    with suppress(FileNotFoundError):
        os.unlink(sidecar)
    write_atomic(plan_path, plan)
    write_atomic(sidecar, (json.dumps(key, indent=2) + '\n').encode())


@contextmanager
def build_lock(plan_path: Path, log: Callable[[str], None] = print) -> Iterator[None]:
    """Exclusive lock on <plan>.lock for the block; says so when it has to wait for another builder."""
    plan_path = Path(plan_path)
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    with open(plan_path.with_name(plan_path.name + '.lock'), 'a+b') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f'waiting for another process that is building {plan_path.name}')
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
