"""``pledgescan notify``: one e-mail per member with something to say, written as ``<member-id>.eml`` and,
with ``--send``, delivered through an SMTP server and recorded in the history store."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from scanner.cli.lang import lang_option
from scanner.cli.support import EXIT_OK, EXIT_THRESHOLD, InputProblem, open_store, store_option


@click.command()
@click.option("--members", "members_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Members file (YAML or CSV): contacts, languages, opt-outs.")
@store_option
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              default=Path("pledgescan-messages"), show_default=True,
              help="Directory that receives one <member-id>.eml per message.")
@click.option("--from", "sender", envvar="PLEDGESCAN_FROM", metavar="ADDR",
              help="Sender address (or $PLEDGESCAN_FROM). Required unless --dry-run.")
@lang_option
@click.option("--run", "run_ref", default="latest", show_default=True, help="The stored run to report.")
@click.option("--remind", multiple=True, metavar="SEV=DAYS",
              help="Days before an item already reported is repeated, per severity "
                   "(default critical=60,high=60,medium=120,low=540). Repeatable.")
@click.option("--send", is_flag=True, help="Deliver the messages through --smtp and record them as sent.")
@click.option("--smtp", "smtp_url", metavar="URL",
              help="smtp://HOST[:PORT] (STARTTLS when offered) or smtps://HOST[:PORT]; credentials from "
                   "$PLEDGESCAN_SMTP_USER and $PLEDGESCAN_SMTP_PASSWORD.")
@click.option("--smtp-ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM file of CAs that sign the SMTP server's certificate (a private relay).")
@click.option("--record", is_flag=True,
              help="Without --send: record the written messages as sent (you deliver the .eml files).")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; write, send and record nothing.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def notify(members_file: Path, store_url: str | None, output: Path, sender: str | None, lang: str,
           run_ref: str, remind: tuple[str, ...], send: bool, smtp_url: str | None,
           smtp_ca_bundle: Path | None, record: bool, dry_run: bool, quiet: bool) -> None:
    """Write (and with --send, deliver) one message per member: worst problems first, what is new since
    the last message, what was fixed, what is still open and for how long. A problem already reported
    is repeated only when its reminder is due; a member with nothing new and nothing due gets nothing."""
    from scanner.history.members import InputError, load_members
    from scanner.history.store import StoreError
    from scanner.i18n import LanguageError, normalize
    from scanner.notify.message import AddressError, build_message, mailbox, write_eml
    from scanner.notify.plan import parse_intervals, plan_all
    from scanner.notify.sent import SentLog
    from scanner.notify.smtp import Mailer, SmtpError, parse_smtp_url
    from scanner.reporters.output import OutputRefused

    try:
        default_lang = normalize(lang)
        intervals = parse_intervals(remind)
    except (LanguageError, ValueError) as exc:
        raise InputProblem(f"--lang: {exc}" if isinstance(exc, LanguageError) else str(exc)) from None
    if send and not smtp_url:
        raise InputProblem("--send needs --smtp smtp://HOST[:PORT]")
    if send and (dry_run or record):
        raise InputProblem("--send cannot go with --dry-run or --record")
    if not dry_run:
        if not sender:
            raise InputProblem("--from ADDR is needed to write messages (or set PLEDGESCAN_FROM)")
        try:
            mailbox(sender, "--from")
        except AddressError as exc:
            raise InputProblem(str(exc)) from None
    smtp = None
    if send:
        try:
            smtp = parse_smtp_url(smtp_url or "", smtp_ca_bundle)
        except SmtpError as exc:
            raise InputProblem(str(exc)) from None
    try:
        inventory = load_members(members_file)
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    store = open_store(store_url)
    try:
        run = store.run(run_ref)
    except StoreError as exc:
        raise InputProblem(str(exc)) from None
    log = SentLog(store)
    now = datetime.now(UTC)
    members = [m.model_dump(mode="json") for m in inventory.members]
    plans = plan_all(store, log, run, members, now, intervals)

    def say(text: str) -> None:
        if not quiet:
            click.echo(text, err=True)

    failures = 0
    outgoing = []
    for plan in plans:
        m_lang = plan.member.get("language") or default_lang
        counts = f"{len(plan.new)} new, {len(plan.due)} reminder(s), {len(plan.fixed)} fixed"
        if plan.skipped:
            say(f"{plan.id}: no message: {plan.skipped}")
            continue
        if not plan.sends:
            say(f"{plan.id}: no message: nothing new and nothing due ({len(plan.waiting)} open, not due yet)")
            continue
        if dry_run:
            click.echo(f"{plan.id}: would write to {plan.member.get('contact')} in {m_lang}: {counts}")
            continue
        try:
            msg = build_message(plan, lang=m_lang, sender=sender or "", now=now)
        except AddressError as exc:
            failures += 1
            click.echo(f"pledgescan: error: {exc}", err=True)
            continue
        try:
            path = write_eml(output / f"{plan.id}.eml", msg)
        except OutputRefused as exc:
            raise InputProblem(str(exc)) from None
        except OSError as exc:
            raise InputProblem(f"cannot write {output}: {exc.strerror or exc}") from None
        say(f"{plan.id}: message written: {path} ({counts})")
        outgoing.append((plan, msg))
    if dry_run:
        return
    sent = 0
    if smtp is not None and outgoing:
        try:
            with Mailer(smtp) as mailer:
                for plan, msg in outgoing:
                    try:
                        mailer.send(msg)
                    except SmtpError as exc:
                        failures += 1
                        click.echo(f"pledgescan: error: {plan.id}: {exc}", err=True)
                        continue
                    log.record(plan.id, plan.records(), sent_at=now, run_id=run.id,
                               recipient=str(msg["To"]), message_id=str(msg["Message-ID"]))
                    sent += 1
        except SmtpError as exc:
            raise click.ClickException(str(exc)) from None
        say(f"{sent} message(s) sent through {smtp.host}:{smtp.port}" + (" (TLS)" if mailer.tls else ""))
    elif record:
        for plan, msg in outgoing:
            log.record(plan.id, plan.records(), sent_at=now, run_id=run.id, recipient=str(msg["To"]),
                       message_id=str(msg["Message-ID"]))
        say(f"{len(outgoing)} message(s) recorded as sent")
    store.close()
    sys.exit(EXIT_THRESHOLD if failures else EXIT_OK)
