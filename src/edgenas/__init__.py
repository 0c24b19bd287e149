"""edgenas: hardware-aware, multi-objective neural architecture search for edge NPUs."""


def __getattr__(name: str) -> str:
    # Looked up on first use only: reading package metadata is not free, and `edgenas --help` needs none.
    if name == "__version__":
        from importlib import metadata

        try:
            return metadata.version("edgenas")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    raise AttributeError(name)
