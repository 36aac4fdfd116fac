"""The wheel's one build step that pyproject.toml cannot say: ``templates/`` (at the repository's top) ships
inside the package as ``duesflow/templates``, so an installed duesflow serves its pages from any folder."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TEMPLATES = Path(__file__).resolve().parent / "templates"


class BuildWithTemplates(build_py):
    """``build_py`` that also copies every page template into the built package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "duesflow" / "templates"
        for source in sorted(TEMPLATES.rglob("*.html")):
            destination = target / source.relative_to(TEMPLATES)
            self.mkpath(str(destination.parent))
            self.copy_file(str(source), str(destination))


setup(cmdclass={"build_py": BuildWithTemplates})
