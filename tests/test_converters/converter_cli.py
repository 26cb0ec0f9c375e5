"""Load a converter script of tools/dataset_converters as a module (they are not a package)."""
import importlib.util
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / 'tools' / 'dataset_converters'


def load_converter(name: str):
    spec = importlib.util.spec_from_file_location(f'converter_{name}', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
