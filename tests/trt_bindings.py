"""
The real TensorRT Python bindings on a machine without a GPU (docs/tensorrt.md section 11).

`tensorrt-cu12-bindings` wheels are real pybind11 modules; only their shared libraries
(libnvinfer, libnvinfer_plugin, libnvonnxparser) are missing here. Those export nine C
symbols the module needs at import; a stub library defining them (returning null), built
with gcc under each soname, lets `import tensorrt_bindings` succeed. Every class, method,
property and enum member is then the real one of that version, with its signatures in the
pybind11 docstrings; nothing can execute (Builder and Runtime refuse the null factory).

`.ci/setup --dev` downloads the wheels listed in requirements/trt-conformance.txt into
.cache/trt-wheels; each version is imported in its own subprocess (one process cannot hold
two versions of the module).
"""

import json
from pathlib import Path
import re
import shutil
import subprocess
import sys
import zipfile

REPO = Path(__file__).resolve().parent.parent
WHEELS = REPO / '.cache' / 'trt-wheels'
VERSIONS_FILE = REPO / 'requirements' / 'trt-conformance.txt'
PROBE = Path(__file__).with_name('trt_probe.py')

# The C symbols the bindings import from TensorRT's libraries (identical in 10.3, 10.13 and 11.4).
SYMBOLS = ('createInferBuilder_INTERNAL', 'createInferRuntime_INTERNAL', 'createInferRefitter_INTERNAL',
           'createNvOnnxParser_INTERNAL', 'createNvOnnxParserRefitter_INTERNAL', 'getPluginRegistry',
           'getBuilderPluginRegistry', 'initLibNvInferPlugins', 'getNvOnnxParserVersion')
LIBRARIES = ('libnvinfer', 'libnvinfer_plugin', 'libnvonnxparser')


def versions() -> list[str]:
    """TensorRT versions under test, from requirements/trt-conformance.txt."""
    return re.findall(r'^tensorrt-cu12-bindings==(\S+)', VERSIONS_FILE.read_text(), re.MULTILINE)


def wheel(version: str) -> Path:
    """Return the cached wheel of a version, or raise naming the command that fetches it."""
    found = sorted(WHEELS.glob(f'tensorrt_cu12_bindings-{version}-*.whl'))
    if not found:
        raise FileNotFoundError(f'no tensorrt-cu12-bindings {version} wheel in {WHEELS}: run `bash .ci/setup --dev`')
    return found[0]


def build_stub(folder: Path) -> Path:
    """Compile the nine-symbol stub once and install it under every soname of TensorRT 10 and 11."""
    gcc = shutil.which('gcc')
    if gcc is None:
        raise FileNotFoundError('gcc is needed to build the TensorRT stub library: apt-get install gcc')
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / 'stub.c'
    source.write_text(''.join(f'void *{name}(void) {{ return 0; }}\n' for name in SYMBOLS))
    built = folder / 'libstub.so'
    subprocess.run([gcc, '-shared', '-fPIC', '-o', str(built), str(source)], check=True, capture_output=True)
    for major in (10, 11):
        for lib in LIBRARIES:
            shutil.copy(built, folder / f'{lib}.so.{major}')
    return folder


def unpack(version: str, folder: Path) -> Path:
    """Extract the wheel of a version; returns the folder to put on PYTHONPATH."""
    target = folder / version
    with zipfile.ZipFile(wheel(version)) as archive:
        archive.extractall(target)
    return target


def probe(site: Path, stub: Path, payload: dict) -> dict:
    """Run tests/trt_probe.py against the bindings unpacked at site; returns its JSON answer."""
    env = {'PATH': '/usr/bin:/bin', 'LD_LIBRARY_PATH': str(stub), 'PYTHONPATH': str(site)}
    result = subprocess.run([sys.executable, str(PROBE)], input=json.dumps(payload), env=env, capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f'the TensorRT probe failed: {result.stderr[-3000:]}')
    return json.loads(result.stdout)
