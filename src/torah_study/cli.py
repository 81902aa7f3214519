"""The ``torah-study`` command line.

Commands: library fetch, ingest, embed, embeddings, models, search, ask, eval,
serve, db and feedback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from torah_study.config import Settings

logger = logging.getLogger("torah_study")

MAX_WORKERS = 64


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """Return the settings given on the command line, by setting name."""
    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "provider", None):
        overrides["llm_provider"] = args.provider
    if getattr(args, "backend", None):
        overrides["retrieval_backend"] = args.backend
    return overrides


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(**_overrides(args))  # type: ignore[arg-type]


def _fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def cmd_fetch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from torah_study.library.fetch import FetchError, FileProgress, fetch_books

    bar = tqdm(desc="fetch", unit="file")

    def progress(event: FileProgress) -> None:
        bar.total = event.total
        bar.update(1)

    try:
        report = fetch_books(
            args.titles, args.dest, base_url=args.base_url, progress=progress
        )
    except FetchError as error:
        bar.close()
        return _fail(str(error))
    bar.close()
    print(
        f"books: {len(report.books)}, downloaded: {len(report.downloaded)}, "
        f"skipped: {len(report.skipped)}, bytes: {report.bytes_downloaded}"
    )
    for title, languages in report.missing_languages.items():
        print(f"missing {', '.join(languages)} for {title}")
    for title, reason in report.failed.items():
        print(f"failed: {title}: {reason}", file=sys.stderr)
    print(f"export folder: {args.dest}")
    return 0 if report.ok else 1


def cmd_ingest(args: argparse.Namespace) -> int:
    from torah_study.embeddings.base import EmbeddingError
    from torah_study.embeddings.scope import ScopeError
    from torah_study.ingest import ingest
    from torah_study.library.export import ExportError
    from torah_study.writer_lock import WriterLockError

    settings = _settings(args)
    updates: dict[str, object] = {}
    if args.books is not None:
        updates["books"] = tuple(args.books)
    if args.dense_scope is not None:
        updates["dense_scope"] = tuple(args.dense_scope)
    settings = settings.model_copy(update=updates)
    export_dir = args.export_dir or settings.export_dir
    dumps = [Path(p) for p in args.dump or []]
    if export_dir is None and not dumps and not settings.dump_paths:
        return _fail(
            "nothing to ingest: pass --export-dir or --dump, or set "
            "TORAH_STUDY_EXPORT_DIR or TORAH_STUDY_DUMP_PATHS "
            "(download an export with `torah-study library fetch`)."
        )
    try:
        report = ingest(
            settings,
            Path(export_dir) if export_dir is not None else None,
            dumps=dumps,
            links=[Path(p) for p in args.links or []],
            show_progress=not args.quiet,
            embed=not args.no_embed,
        )
    except (ExportError, WriterLockError) as error:
        return _fail(str(error))
    except ScopeError as error:
        return _fail(
            f"{error} The books are stored; embed them with "
            "`torah-study embed --dense-scope ...`."
        )
    except EmbeddingError as error:
        return _fail(
            f"{error} The books and the vectors stored so far are kept; "
            "`torah-study embed` continues."
        )
    print(report.summary())
    print(f"library stored in {settings.data_dir}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from torah_study.embeddings.run import run_embed

    settings = _settings(args)
    if args.dense_scope is not None:
        settings = settings.model_copy(update={"dense_scope": tuple(args.dense_scope)})
    return run_embed(settings, quiet=args.quiet)


def cmd_embeddings(args: argparse.Namespace) -> int:
    from torah_study.embeddings.run import run_export, run_import, run_texts

    settings = _settings(args)
    if args.embeddings_command == "import":
        return run_import(settings, args.file)
    names = args.books if args.embeddings_command == "export" else args.dense_scope
    file = args.file
    if file is None and names and len(names) > 1:
        # "--dense-scope Tanakh out.parquet": the list option took the file too.
        file = Path(names.pop())
    if file is None:
        return _fail(f"embeddings {args.embeddings_command} needs a file to write.")
    if args.embeddings_command == "export":
        return run_export(settings, file, args.books)
    scope = tuple(args.dense_scope) if args.dense_scope is not None else None
    return run_texts(settings, file, scope, pending_only=not args.all)


def cmd_models(args: argparse.Namespace) -> int:
    from torah_study.answer.llm.weights import WeightsError, fetch_model

    settings = _settings(args)
    try:
        path = fetch_model(args.name, settings.models_dir, progress=print)
    except WeightsError as error:
        return _fail(str(error))
    print(path)
    return 0


def _services(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from torah_study.service import build_services

    return build_services(_settings(args))


def cmd_search(args: argparse.Namespace) -> int:
    from torah_study.index.base import Filters
    from torah_study.service import NotIngestedError

    try:
        services = _services(args)
    except NotIngestedError as error:
        return _fail(str(error))
    if not args.query.strip():
        return _fail("the query is blank.")
    try:
        books, categories = services.catalog.resolve_filters(
            args.book or (), args.category or ()
        )
    except ValueError as error:
        return _fail(str(error))
    result = services.retriever.retrieve(args.query, Filters(books, categories))
    if result.message:
        print(result.message)
    for number, passage in enumerate(result.passages, start=1):
        record = passage.record
        print(f"[{number}] {record.ref}  {passage.he_ref}  score {passage.score:.3f}")
        if record.he:
            print(f"    {record.he[:200]}")
        if record.en:
            print(f"    {record.en[:200]}")
    timings = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.timings.items())
    print(f"({result.mode}; {timings})")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from torah_study.answer.pipeline import (
        DoneEvent,
        ErrorEvent,
        SourcesEvent,
        TokenEvent,
        VerificationEvent,
    )
    from torah_study.index.base import Filters
    from torah_study.service import NotIngestedError

    try:
        services = _services(args)
    except NotIngestedError as error:
        return _fail(str(error))
    question = " ".join(args.question).strip()
    if not question:
        return _fail("the question is blank.")
    try:
        books, categories = services.catalog.resolve_filters(
            args.book or (), args.category or ()
        )
    except ValueError as error:
        return _fail(str(error))
    for event in services.pipeline.run(question, Filters(books, categories)):
        if isinstance(event, SourcesEvent):
            if event.sources:
                print("Sources:")
                for source in event.sources:
                    print(f"  [{source['n']}] {source['ref']}  {source['he_ref']}")
                print()
        elif isinstance(event, TokenEvent):
            print(event.text, end="", flush=True)
        elif isinstance(event, VerificationEvent):
            print()
            removed = event.report.get("removed", [])
            state = (
                "passed" if event.report.get("passed") else f"removed {len(removed)}"
            )
            print(f"\n(verification {state}", end="")
        elif isinstance(event, DoneEvent):
            print(f"; answered by {event.provider})")
        elif isinstance(event, ErrorEvent):
            return _fail(event.message)
    return 0


def _count(number: int, noun: str) -> str:
    """Return "1 metric is" or "3 metrics are"."""
    return f"{number} {noun} is" if number == 1 else f"{number} {noun}s are"


def cmd_eval(args: argparse.Namespace) -> int:
    from torah_study.evaluation import (
        DEFAULT_MARGIN,
        KINDS,
        Change,
        EvalFileError,
        calibrate,
        check_gold_refs,
        compare,
        evaluate,
        load_baseline,
        load_questions,
        markdown,
        outcome_row,
        summarize,
    )
    from torah_study.service import NotIngestedError, build_services

    margin = DEFAULT_MARGIN if args.margin is None else args.margin
    if not 0 <= margin <= 1:
        return _fail("--margin must be between 0 and 1.")
    if args.update_baseline and args.baseline is None:
        return _fail("--update-baseline needs --baseline FILE to write to.")
    if args.calibrate and args.baseline is not None:
        return _fail("--calibrate compares no baseline: leave out --baseline.")
    written = [args.output, args.markdown]
    if args.update_baseline:
        written.append(args.baseline)
    targets = [t for t in written if t is not None]
    for target in targets:
        if target.is_dir():
            return _fail(f"cannot write {target}: it is a folder.")
        if not target.parent.is_dir():
            return _fail(f"cannot write {target}: its folder does not exist.")
        if target.resolve() == args.file.resolve():
            return _fail(f"cannot write {target}: it is the question file.")
    if len({t.resolve() for t in targets}) < len(targets):
        return _fail("--output, --markdown and --baseline must be different files.")
    if (
        args.baseline is not None
        and not args.update_baseline
        and args.output is not None
        and args.output.resolve() == args.baseline.resolve()
    ):
        return _fail(f"cannot write {args.output}: it is the baseline.")
    try:
        questions = load_questions(args.file)
        if args.kind:
            unknown = sorted(set(args.kind) - set(KINDS))
            if unknown:
                raise EvalFileError(
                    f"unknown --kind {', '.join(unknown)}; expected one of {KINDS}"
                )
            questions = [q for q in questions if q.kind in args.kind]
        if args.lang:
            questions = [q for q in questions if q.lang in args.lang]
        if not questions:
            raise EvalFileError("no question matches the --kind and --lang filters")
        baseline = (
            load_baseline(args.baseline)
            if args.baseline is not None and not args.update_baseline
            else None
        )
        settings = _settings(args)
        if args.calibrate:
            # Open the gate so that no search abstains; calibrate() replays the gate.
            settings = settings.model_copy(update={"gate_threshold": 0.0})
        services = build_services(settings)
    except (EvalFileError, OSError, NotIngestedError) as error:
        return _fail(str(error))
    if args.provider not in ("auto", "sources") and services.pipeline.model is None:
        return _fail(
            f"the answer model for --provider {args.provider} is unavailable "
            "(see the error above); the run would only list sources."
        )
    if baseline is not None:
        pinned_on = (
            baseline.get("file"),
            baseline["summary"]["overall"].get("questions"),
        )
        if pinned_on != (args.file.name, len(questions)):
            return _fail(
                f"the baseline was pinned on {pinned_on[0]} with {pinned_on[1]} "
                "questions; "
                f"this run has {args.file.name} with {len(questions)}."
            )
    problems = check_gold_refs(services.catalog, questions)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)

    def show(outcome: Any) -> None:
        mark = "ok  " if outcome.correct() else "MISS"
        rank = outcome.first_hit or "-"
        print(
            f"{mark} {outcome.question.id:>6} {outcome.question.kind:<12} "
            f"{outcome.question.lang or '-':<8} rank {rank!s:>2} "
            f"{outcome.mode:<11} {outcome.question.question[:60]}",
            flush=True,
        )

    outcomes = evaluate(services, questions, progress=None if args.quiet else show)
    if args.calibrate:
        rows = calibrate(outcomes, [n / 40 for n in range(4, 25)])
        lines = [
            "| gate threshold | over-refusal | out-of-library abstained |",
            "|---|---|---|",
        ]
        lines += [
            f"| {r['threshold']:.3f} | {r['over_refusal']} | "
            f"{r['out_of_library_abstained']} |"
            for r in rows
        ]
        table = "\n".join(lines) + "\n"
        print(table)
        if args.markdown is not None:
            args.markdown.write_text(table, encoding="utf-8")
        if args.output is not None:
            args.output.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        if problems:
            return _fail(_count(len(problems), "gold ref") + " not in the library.")
        return 0
    summary = summarize(outcomes)
    print(json.dumps(summary["overall"], indent=2, ensure_ascii=False))
    changes: list[Change] = []
    failures: list[Change] = []
    if baseline is not None:
        changes, failures = compare(baseline["summary"], summary, margin)
    result = {
        "file": args.file.name,
        "provider": services.pipeline.provider_name,
        "summary": summary,
        "questions": [outcome_row(o) for o in outcomes],
    }
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    if args.update_baseline:
        # The pinned file keeps the figures, not the answers: answers quote the
        # library's texts, which do not belong in a repository.
        # TODO: a pin made with --kind or --lang does not record the filter.
        pinned = {
            "file": result["file"],
            "provider": result["provider"],
            "summary": summary,
            "questions": [
                {
                    key: row[key]
                    for key in ("id", "kind", "lang", "mode", "correct", "first_hit")
                }
                for row in result["questions"]
            ],
        }
        args.baseline.write_text(
            json.dumps(pinned, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"Pinned this run as the baseline in {args.baseline}.")
    if args.markdown is not None:
        title = f"{args.file.name} ({services.pipeline.provider_name})"
        args.markdown.write_text(
            markdown(summary, outcomes, title, changes, margin), encoding="utf-8"
        )
    if problems:
        return _fail(_count(len(problems), "gold ref") + " not in the library.")
    if failures:
        for change in failures:
            print(
                f"worse: {change.metric} {change.baseline} -> {change.current}",
                file=sys.stderr,
            )
        return _fail(
            _count(len(failures), "metric")
            + f" worse than the baseline by more than the allowed drop ({margin})."
        )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from torah_study.api.app import create_app
    from torah_study.api.shutdown import uvicorn_grace_seconds

    settings = _settings(args)
    host = args.host or settings.host
    port = args.port or settings.port
    if not settings.catalog_path.exists():
        return _fail(
            f"No library in {settings.data_dir}: run `torah-study ingest` first."
        )
    from torah_study.accounts.tokens import SecretError, resolve_secret

    try:
        resolve_secret(settings)
    except SecretError as error:
        return _fail(str(error))
    problem = _check_store(settings)
    if problem is not None:
        return _fail(problem)
    workers = args.workers
    processes = "1 process" if workers == 1 else f"{workers} worker processes"
    print(
        f"Torah Study is starting on http://{host}:{port}/ with {processes}",
        flush=True,
    )
    _configure_service_logging(settings, args.verbose)
    # uvicorn cancels the requests still running after this many seconds.
    timeout = uvicorn_grace_seconds(settings.shutdown_grace_seconds)
    # log_config=None: uvicorn's loggers propagate to the handler configured
    # above, so its access log has the same format as the service's lines.
    if workers == 1:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level="info",
            log_config=None,
            timeout_graceful_shutdown=timeout,
        )
        return 0
    _prepare_workers(settings, _overrides(args))
    with _metrics_dir():
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            log_config=None,
            timeout_graceful_shutdown=timeout,
        )
    return 0


def _configure_service_logging(settings: Settings, verbose: bool) -> None:
    """Log in the service's format: INFO from the service, WARNING from libraries."""
    from torah_study.observability.logs import configure_logging

    configure_logging(
        settings.resolved_log_format,
        logging.DEBUG if verbose else logging.WARNING,
        force=False,
    )
    if not verbose:
        # A service logs its start, stop and errors without being asked to.
        logging.getLogger("torah_study").setLevel(logging.INFO)


@contextmanager
def _metrics_dir() -> Iterator[None]:
    """Give the worker processes a shared folder for their Prometheus metrics.

    A folder given in PROMETHEUS_MULTIPROC_DIR is used as it is; otherwise a
    temporary one is made and removed when the server stops.
    """
    from torah_study.observability.metrics import MULTIPROCESS_ENV

    if os.environ.get(MULTIPROCESS_ENV):
        yield
        return
    folder = tempfile.mkdtemp(prefix="torah-study-metrics-")
    os.environ[MULTIPROCESS_ENV] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROCESS_ENV]
        shutil.rmtree(folder, ignore_errors=True)


def _check_store(settings: Settings) -> str | None:
    """Open the retrieval store once before serving; return what is wrong, if any.

    A store that cannot be opened (no database, another vector dimension)
    would otherwise fail every worker's start-up with a traceback.
    """
    from torah_study.embeddings import build_embeddings
    from torah_study.embeddings.base import EmbeddingError
    from torah_study.index.base import StoreError
    from torah_study.index.factory import open_store

    try:
        store = open_store(settings, build_embeddings(settings).dimension)
    except (StoreError, EmbeddingError) as error:
        return str(error)
    close = getattr(store, "close", None)
    if close is not None:
        close()
    return None


def _prepare_workers(settings: Settings, overrides: dict[str, object]) -> None:
    """Do once what every worker would otherwise race to do, and hand over settings.

    Worker processes are started fresh by uvicorn and read their settings from
    the environment, so every setting given on the command line (``overrides``:
    the data folder, the retrieval backend) is passed there. The accounts
    database is migrated here, once, and the workers skip the migration.
    """
    from torah_study.db.engine import create_db_engine
    from torah_study.db.migrate import upgrade

    if settings.migrate_on_start:
        engine = create_db_engine(settings.database)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
    for name, value in overrides.items():
        os.environ[f"TORAH_STUDY_{name.upper()}"] = str(value)
    os.environ["TORAH_STUDY_DATA_DIR"] = str(settings.data_dir)
    os.environ["TORAH_STUDY_MIGRATE_ON_START"] = "false"


def worker_app() -> Any:
    """Build the app in a worker process of ``serve --workers N``."""
    from torah_study.api.app import create_app

    settings = Settings()
    _configure_service_logging(settings, verbose=False)
    return create_app(settings)


def cmd_db(args: argparse.Namespace) -> int:
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from torah_study.db.engine import create_db_engine
    from torah_study.db.migrate import (
        current_revision,
        downgrade,
        head_revision,
        upgrade,
    )

    settings = _settings(args)
    if args.action == "setup-search":
        return setup_search(settings)
    if args.action in ("backup", "restore"):
        return backup_or_restore(settings, args.action, args.target, args.force)
    if args.action == "downgrade" and not args.target:
        return _fail("downgrade needs a revision, such as `base` (drops every table).")
    if args.action == "downgrade" and not args.yes:
        return _fail(
            f"downgrade to {args.target} deletes tables and their data; stop the "
            "service, back the database up, and add --yes to go ahead."
        )
    missing = _missing_sqlite_file(settings.database)
    if missing is not None and args.action != "upgrade":
        return _fail(f"no database at {missing}: run `torah-study db upgrade`.")
    try:
        engine = create_db_engine(settings.database)
    except (ArgumentError, ImportError, ValueError) as error:
        return _fail(f"invalid TORAH_STUDY_DATABASE_URL: {error}")
    shown = engine.url.render_as_string(hide_password=True)
    try:
        if args.action == "upgrade":
            upgrade(engine)
            print(f"{shown} is at revision {current_revision(engine)} (newest).")
        elif args.action == "downgrade":
            downgrade(engine, args.target)
            print(f"{shown} is at revision {current_revision(engine) or 'base'}.")
        else:
            current = current_revision(engine)
            head = head_revision()
            state = "up to date" if current == head else f"behind: newest is {head}"
            print(f"{shown}: revision {current or 'none'} ({state}).")
    except (SQLAlchemyError, CommandError) as error:
        return _fail(f"database {shown}: {_first_line(error)}")
    finally:
        engine.dispose()
    return 0


def backup_or_restore(
    settings: Settings, action: str, file: str | None, force: bool
) -> int:
    """Back up the SQLite accounts database into ``file``, or restore it."""
    from torah_study.db import backup

    if not file:
        return _fail(f"{action} needs a file, such as `accounts-backup.db`.")
    try:
        database = backup.sqlite_path(settings.database)
        if action == "backup":
            snapshot = backup.backup(database, Path(file), overwrite=force)
            print(
                f"Backed up {database} to {snapshot.path} ({snapshot.size} bytes, "
                f"revision {snapshot.revision})."
            )
            return 0
        restored = backup.restore(database, Path(file), force=force)
    except backup.BackupError as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"{action} failed: {error}")
    if restored.previous is not None:
        print(f"Kept the previous database as {restored.previous}.")
    print(f"Restored {database} from {file} (revision {restored.revision}).")
    from torah_study.db.migrate import head_revision

    if restored.revision != head_revision():
        print(
            "The backup is from an older schema: the service upgrades it on "
            "start, or run `torah-study db upgrade`."
        )
    return 0


def setup_search(settings: Settings) -> int:
    """Install hunspell-he and create the text search configuration.

    The dictionary files can only be copied when the server's share folder
    is on this machine and writable; otherwise this reports what to copy.
    """
    import psycopg

    from torah_study.index import pg_search, pg_terms

    try:
        url = settings.retrieval_database
    except ValueError as error:
        return _fail(str(error))
    try:
        with psycopg.connect(url) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
            sharedir = pg_search.server_sharedir(connection)
            if sharedir is None or not (sharedir / "tsearch_data").is_dir():
                return _fail(
                    "the server's text search folder is not on this machine (or "
                    "this role may not read pg_config): copy "
                    f"{pg_search.HUNSPELL_DIR}/he_IL.aff and he_IL.dic into its "
                    "$(pg_config --sharedir)/tsearch_data as he_il.affix and "
                    "he_il.dict, write the niqqud rules there, and run this again"
                )
            pg_search.install_dictionary_files(sharedir)
            had_hebrew = pg_search.has_hebrew_dictionary(connection)
            hebrew = pg_search.create_configuration(connection, upgrade=True)
            if hebrew and not had_hebrew:
                # Stored keyword vectors were made without the dictionary;
                # rewriting the source column recomputes them.
                table = connection.execute(
                    "SELECT to_regclass('retrieval_segments')"
                ).fetchone()
                if table and table[0] is not None:
                    print("Reindexing the stored segments with the new dictionary…")
                    connection.execute("UPDATE retrieval_segments SET search = search")
                    if pg_terms.tables_exist(connection):
                        pg_terms.refresh(connection)
            connection.commit()
    except (psycopg.Error, OSError) as error:
        return _fail(f"setting up text search failed: {_first_line(error)}")
    if not hebrew:
        return _fail(
            f"{pg_search.CONFIGURATION} has no Hebrew dictionary, so Hebrew "
            "words are matched without their prefixes removed: install the "
            "Debian package hunspell-he and run this again."
        )
    print(f"{pg_search.CONFIGURATION} uses the Hebrew dictionary from hunspell-he.")
    return 0


def _missing_sqlite_file(url: str) -> Path | None:
    """Return the file of a SQLite URL when it does not exist, else None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    path = Path(database).expanduser()
    return None if path.exists() else path


def _validation_message(error: ValidationError) -> str:
    """Return the problems of invalid settings on one line, by setting name."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'settings'}: "
        f"{problem['msg']}"
        for problem in error.errors()
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


def cmd_feedback(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from torah_study.conversations.store import ConversationStore
    from torah_study.db.engine import create_db_engine, session_factory
    from torah_study.db.migrate import current_revision, head_revision

    settings = _settings(args)
    missing = _missing_sqlite_file(settings.database)
    if missing is not None:
        return _fail(f"no database at {missing}: nothing has been rated yet.")
    try:
        engine = create_db_engine(settings.database)
    except (ArgumentError, ImportError, ValueError) as error:
        return _fail(f"invalid TORAH_STUDY_DATABASE_URL: {error}")
    shown = engine.url.render_as_string(hide_password=True)
    try:
        if current_revision(engine) != head_revision():
            return _fail(
                f"{shown} is not migrated: run `torah-study db upgrade` first."
            )
        store = ConversationStore(session_factory(engine), lambda text: None)
        records = list(store.feedback_records())
    except SQLAlchemyError as error:
        return _fail(f"database {shown}: {_first_line(error)}")
    finally:
        engine.dispose()
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if args.output:
        args.output.write_text(lines, encoding="utf-8")
        print(f"Wrote {len(records)} rated answers to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
    return 0


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value}: use 1 to 65535")
    return value


def _workers(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"invalid worker count {value}: use 1 to {MAX_WORKERS}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torah-study", description=__doc__)
    parser.add_argument("--data-dir", type=Path, help="folder for the index and models")
    parser.add_argument(
        "--backend",
        choices=["lance", "postgres"],
        help="retrieval store for ingest, search, ask, eval and serve "
        "(default: the retrieval_backend setting, lance)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    commands = parser.add_subparsers(dest="command", required=True)

    library = commands.add_parser("library", help="manage the text export")
    library_commands = library.add_subparsers(dest="library_command", required=True)
    fetch = library_commands.add_parser(
        "fetch", help="download books from Sefaria's export"
    )
    fetch.add_argument(
        "titles", nargs="+", help="book titles or categories, e.g. Torah"
    )
    fetch.add_argument(
        "--dest", type=Path, required=True, help="export folder to write"
    )
    from torah_study.library.fetch import DEFAULT_EXPORT_URL

    fetch.add_argument("--base-url", default=DEFAULT_EXPORT_URL, help="export tree URL")
    fetch.set_defaults(handler=cmd_fetch)

    ingest = commands.add_parser("ingest", help="read an export into the index")
    ingest.add_argument("--export-dir", type=Path, help="Sefaria-Export folder")
    ingest.add_argument(
        "--dump",
        type=Path,
        nargs="+",
        action="extend",
        help="Sefaria dataset dump (JSON Lines); repeatable",
    )
    ingest.add_argument(
        "--links",
        type=Path,
        nargs="+",
        action="extend",
        help="links CSV file outside the export; repeatable",
    )
    ingest.add_argument("--books", nargs="*", help="only these titles or categories")
    ingest.add_argument(
        "--dense-scope",
        nargs="*",
        help="titles or categories to embed ('*' for all; no value embeds nothing)",
    )
    ingest.add_argument(
        "--no-embed",
        action="store_true",
        help="skip the embedding stage (run `torah-study embed` later)",
    )
    ingest.add_argument("--quiet", action="store_true", help="hide progress bars")
    ingest.set_defaults(handler=cmd_ingest)

    embed = commands.add_parser(
        "embed", help="embed the dense scope of the ingested library, with progress"
    )
    embed.add_argument(
        "--dense-scope",
        nargs="+",
        help="titles, categories or commentators to embed ('*' for all; "
        "default: the dense_scope setting)",
    )
    embed.add_argument("--quiet", action="store_true", help="print no progress lines")
    embed.set_defaults(handler=cmd_embed)

    embeddings = commands.add_parser(
        "embeddings", help="move vectors in and out as Parquet files"
    )
    embeddings_commands = embeddings.add_subparsers(
        dest="embeddings_command", required=True
    )
    importing = embeddings_commands.add_parser(
        "import", help="store precomputed vectors from a Parquet file"
    )
    importing.add_argument("file", type=Path)
    exporting = embeddings_commands.add_parser(
        "export", help="write the stored vectors to a Parquet file"
    )
    # The file is optional for argparse only: given after --books it is the
    # last value of that list (see cmd_embeddings).
    exporting.add_argument("file", type=Path, nargs="?")
    exporting.add_argument(
        "--books", nargs="+", help="only these book titles (default: all)"
    )
    texts = embeddings_commands.add_parser(
        "texts",
        help="write the texts to embed (ref, lang, version, text) to a Parquet file",
    )
    texts.add_argument("file", type=Path, nargs="?")
    texts.add_argument(
        "--dense-scope", nargs="+", help="names to include (default: the setting)"
    )
    texts.add_argument(
        "--all", action="store_true", help="include segments that have a vector"
    )
    embeddings.set_defaults(handler=cmd_embeddings)

    models = commands.add_parser("models", help="fetch local answer model weights")
    models.add_argument("name", nargs="?", default="qwen2.5-0.5b", help="model name")
    models.set_defaults(handler=cmd_models)

    search = commands.add_parser("search", help="show ranked passages for a query")
    search.add_argument("query")
    search.add_argument(
        "--book", action="append", help="restrict to a book (repeatable)"
    )
    search.add_argument("--category", action="append", help="restrict to a category")
    search.set_defaults(handler=cmd_search)

    ask = commands.add_parser("ask", help="ask a question and stream the answer")
    ask.add_argument("question", nargs="+")
    ask.add_argument("--book", action="append", help="restrict to a book (repeatable)")
    ask.add_argument("--category", action="append", help="restrict to a category")
    ask.add_argument(
        "--provider",
        choices=["auto", "local", "sources", "gemini", "openai"],
        help="answer model (default: the setting, auto)",
    )
    ask.set_defaults(handler=cmd_ask)

    evaluation = commands.add_parser(
        "eval",
        help="score answers on a JSONL question set, against a pinned baseline",
    )
    evaluation.add_argument("file", type=Path)
    evaluation.add_argument(
        "--output", type=Path, help="write the summary and every question as JSON"
    )
    evaluation.add_argument(
        "--markdown", type=Path, help="write the summary tables as Markdown"
    )
    evaluation.add_argument(
        "--baseline",
        type=Path,
        help="a pinned result (JSON from --output): exit with status 1 when a "
        "metric is worse than it by more than --margin",
    )
    evaluation.add_argument(
        "--margin",
        type=float,
        help="allowed drop of a share against the baseline (default 0.02)",
    )
    evaluation.add_argument(
        "--update-baseline",
        action="store_true",
        help="write this run to the --baseline file instead of comparing",
    )
    evaluation.add_argument(
        "--quiet", action="store_true", help="do not print a line per question"
    )
    evaluation.add_argument(
        "--kind",
        action="append",
        help="run only questions of this kind (repeatable)",
    )
    evaluation.add_argument(
        "--lang",
        action="append",
        help="run only questions in this language: en, he or translit (repeatable)",
    )
    evaluation.add_argument(
        "--calibrate",
        action="store_true",
        help="run with the abstention gate open and print, for a range of gate "
        "thresholds, the over-refusal and out-of-library abstention they give",
    )
    evaluation.add_argument(
        "--provider",
        choices=["auto", "local", "sources", "gemini", "openai"],
        default="sources",
        help="answer model for the run (default: sources, which is deterministic)",
    )
    evaluation.set_defaults(handler=cmd_eval)

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port, 1 to 65535 (default 8000)")
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="number of worker processes that share the port (default 1); each "
        "loads its own models and reads the index, and an ingest may run "
        "while they serve",
    )
    serve.set_defaults(handler=cmd_serve)

    database = commands.add_parser(
        "db",
        help="migrate, back up or restore the accounts database (the service "
        "also migrates on start)",
    )
    database.add_argument(
        "action",
        choices=[
            "upgrade",
            "current",
            "downgrade",
            "backup",
            "restore",
            "setup-search",
        ],
        help="upgrade to the newest schema, show the revision, downgrade, back "
        "up or restore a SQLite database, or install the Hebrew text search of "
        "the PostgreSQL retrieval store",
    )
    database.add_argument(
        "target",
        nargs="?",
        metavar="REVISION_OR_FILE",
        help="target of downgrade, such as base (which drops every table); the "
        "backup file of backup and restore",
    )
    database.add_argument(
        "--yes", action="store_true", help="confirm a downgrade, which deletes data"
    )
    database.add_argument(
        "--force",
        action="store_true",
        help="backup: overwrite an existing file; restore: go ahead although "
        "the database has a write-ahead log (another program may have it open)",
    )
    database.set_defaults(handler=cmd_db)

    feedback = commands.add_parser(
        "feedback", help="export rated answers as JSON Lines, for evaluation"
    )
    feedback.add_argument("action", choices=["export"])
    feedback.add_argument("--output", type=Path, help="file to write (default: stdout)")
    feedback.set_defaults(handler=cmd_feedback)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from torah_study.index.base import StoreError
    from torah_study.observability.logs import configure_logging

    args = build_parser().parse_args(argv)
    try:
        configure_logging(
            _settings(args).log_format or "text",
            logging.DEBUG if args.verbose else logging.WARNING,
            force=False,
        )
        code: int = args.handler(args)
    except ValidationError as error:
        return _fail(f"invalid setting: {_validation_message(error)}")
    except SettingsError as error:
        return _fail(f"invalid setting: {_first_line(error)}")
    except StoreError as error:
        return _fail(str(error))
    except BrokenPipeError:
        # The reader of the output went away (for example `| head`).
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
