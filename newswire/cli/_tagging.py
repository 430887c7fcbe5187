"""``newswire tag`` and ``newswire taxonomy``: tag one text and say why; check, evaluate or copy a taxonomy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from newswire.cli._common import TaxonomyOpt, UserError, VerboseOpt, app, start, taxonomy_app


@app.command()
def tag(
    source: Annotated[
        str, typer.Argument(help="A text file (first line: the title), an HTML page, or - for stdin.")
    ] = "-",
    title: Annotated[
        str | None, typer.Option("--title", help="The title; then all of the input is the text.")
    ] = None,
    lead: Annotated[
        str | None, typer.Option("--lead", help="A feed summary, weighed as the lead.")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="The page's address (helps extraction).")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Show every topic, tagged or not.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    taxonomy: TaxonomyOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Tag one text or page and say why: each topic's score, threshold, terms and what was not counted.
    For checking a taxonomy edit; the pipeline tags the same way."""
    start(verbose, None)
    from newswire.explain import explanation_json, explanation_lines, split_title
    from newswire.processors.tagging import Tagger, load_taxonomy

    tagger = Tagger(load_taxonomy(taxonomy))  # a broken taxonomy fails before the input is read
    if source == "-":
        if sys.stdin.isatty():  # nothing piped in: say so rather than wait for a typed text
            if title is None and lead is None:
                raise UserError("give a file to tag, pipe a text into `newswire tag -`, or give --title/--lead")
            data = b""  # a headline (and summary) alone, typed at a terminal
        else:
            data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            if source.lower().startswith(("http://", "https://")) and not Path(source).exists():
                raise UserError(
                    f"cannot read {source}: `tag` reads a file or stdin, not an address (save the page, then tag the file)"
                ) from None
            raise UserError(f"cannot read {source}: {exc.strerror}") from None
    head = data[:1024].lstrip().lower()
    named_html = source != "-" and Path(source).suffix.lower() in (".html", ".htm", ".xhtml")
    if named_html or head.startswith((b"<!doctype html", b"<html")) or b"<body" in data[:4096].lower():
        from newswire.processors.extract import extract_article

        extraction = extract_article(data, url)
        if extraction is None:
            raise UserError(f"no article text found in {source}")
        text = extraction.text
        title = title if title is not None else extraction.title
    else:
        try:
            decoded = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UserError(f"{source} is neither UTF-8 text nor an HTML page") from None
        if title is None:
            title, text = split_title(decoded)
        else:
            text = decoded.strip()
    if not (title or text or lead):
        raise UserError(f"{source} is empty")
    explained = tagger.explain(title, text, lead=lead)
    if as_json:
        typer.echo(json.dumps(explanation_json(tagger.version, explained), ensure_ascii=False, indent=2))
        return
    typer.echo(f"taxonomy {tagger.version}")
    for line in explanation_lines(explained, show_all=show_all):
        typer.echo(line)


@taxonomy_app.command("check")
def taxonomy_check(
    path: Annotated[
        Path | None,
        typer.Argument(
            envvar="NEWSWIRE_TAXONOMY", help="YAML file or directory (default: built in).", show_default=False
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Exit 2 on a warning of the taxonomy too (a learned model set aside), e.g. in CI; the "
            "embeddings extra's lines below do not count.",
        ),
    ] = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Load a taxonomy as the pipeline would and list its topics; a mistake is one line naming the
    file and line, and exit status 2."""
    start(verbose, None)
    from newswire.explain import combiner_lines, taxonomy_lines
    from newswire.processors.tagging import Tagger, load_taxonomy

    loaded = load_taxonomy(path)
    tagger = Tagger(loaded, embeddings=False)  # compiles every form, as a run would
    for line in taxonomy_lines(loaded):
        typer.echo(line)
    for line in combiner_lines(tagger):
        typer.echo(line)
    if strict and loaded.warnings:  # each warning was logged on the terminal as the taxonomy loaded
        count = len(loaded.warnings)
        raise UserError(f"--strict: the taxonomy loaded with {count} warning{'s' if count > 1 else ''} (above)")


@taxonomy_app.command("eval")
def taxonomy_eval(
    items: Annotated[
        Path,
        typer.Argument(help="Labelled items, JSON Lines: text, title, lead, topics (grades), traps.", show_default=False),
    ],
    taxonomy: TaxonomyOpt = None,
    errors: Annotated[bool, typer.Option("--errors", help="List every mistake, topic by topic.")] = False,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="Precision, recall and F1 at thresholds 0.20-0.85, per topic.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Measure a taxonomy on your own labelled items: per topic, precision, recall and F1 with 95%
    intervals, recall on grade-2 items and the share of negatives tagged (the figures of the built-in
    evaluation). The file format is in docs/tagging.md."""
    start(verbose, None)
    from dataclasses import asdict

    from newswire.labelled import SWEEP, evaluate, load_labelled
    from newswire.processors.tag_metrics import fmt, table_lines
    from newswire.processors.tagging import Tagger, load_taxonomy

    tagger = Tagger(load_taxonomy(taxonomy))
    labelled = load_labelled(items, tagger.taxonomy.slugs)
    evaluation = evaluate(tagger, labelled)
    if as_json:
        report = {
            "taxonomy": tagger.version,
            "items": len(labelled),
            "topics": evaluation.results,
            "mistakes": [asdict(m) for m in evaluation.mistakes] if errors else None,
            "sweep": {
                slug: [{"threshold": c, "precision": p, "recall": r, "f1": f} for c, p, r, f in rows]
                for slug, rows in evaluation.sweep.items()
            }
            if sweep
            else None,
        }
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    typer.echo(f"taxonomy {tagger.version}; {len(labelled)} items from {items}")
    for line in table_lines(evaluation.results):
        typer.echo(line)
    if errors:
        for m in evaluation.mistakes:
            what = f"missed (grade {m.grade})" if m.kind == "missed" else "wrongly tagged"
            matched = ", ".join(f"{k} x{v}" for k, v in m.matches.items()) or "no match"
            typer.echo(f"  {m.topic}: {what}, score {m.score:.2f}: {m.item}: {m.excerpt!r} [{matched}]")
    if sweep:
        topics = tagger.taxonomy.topics
        typer.echo("F1 (precision/recall) by threshold; * marks each topic's threshold")
        typer.echo("threshold " + "".join(f"{t.slug[:19]:<20}" for t in topics))
        for i, cut in enumerate(SWEEP):
            cells = []
            for t in topics:
                _, p, r, f = evaluation.sweep[t.slug][i]
                mark = "*" if abs(cut - t.threshold) < 1e-9 else " "
                cells.append(f"{mark}{fmt(f)} ({fmt(p)}/{fmt(r)})".ljust(20))
            typer.echo(f"{cut:<10.2f}" + "".join(cells))


@taxonomy_app.command("copy")
def taxonomy_copy(
    directory: Annotated[Path, typer.Argument(help="Where to write the shipped topic files.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Copy the shipped taxonomy's YAML files into DIRECTORY, to edit and pass as --taxonomy."""
    start(verbose, None)
    from importlib import resources

    root = resources.files("newswire").joinpath("taxonomy")
    files = sorted((e.name, e.read_bytes()) for e in root.iterdir() if e.name.endswith((".yaml", ".yml")))
    clashes = [name for name, _ in files if (directory / name).exists()]
    if clashes and not force:
        raise UserError(f"{directory / clashes[0]} exists (--force overwrites)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in files:
            (directory / name).write_bytes(content)
    except OSError as exc:
        raise UserError(f"cannot write to {directory}: {exc.strerror}") from None
    typer.echo(f"{len(files)} topic files written to {directory}; use them with --taxonomy {directory}")
