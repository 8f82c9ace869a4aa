"""`cronium completion bash|zsh|fish`: the shell's completion script (Click's), and the completers
that offer execution ids, job names and deployment names from Redis (read-only, quietly nothing
when Redis does not answer)."""
from __future__ import annotations

import click
from click.shell_completion import CompletionItem, get_completion_class

#: Execution ids offered (the newest of the executions index).
RECENT = 200


def _store(ctx: click.Context):
    """A read-only store from the command line's --config (or CRONIUM_CONFIG); None on any error."""
    from cronium.core.config import load_config
    from cronium.core.errors import CroniumError
    from cronium.core.runtime import Runtime

    try:
        cfg = load_config(config_file=ctx.find_root().params.get("config_file"))
        return Runtime(cfg, read_only=True).store
    except (CroniumError, OSError):
        return None


def _quietly(complete):
    """A completer that offers nothing, instead of failing, when Redis does not answer."""
    def wrapper(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
        from cronium.core.errors import CroniumError

        store = _store(ctx)
        try:
            return [] if store is None else complete(store, incomplete)
        except CroniumError:
            return []
    wrapper.__wrapped__ = complete
    return wrapper


@_quietly
def complete_execution(store, incomplete: str) -> list[CompletionItem]:
    rows = store.records.summaries(store.records.window(count=RECENT), ("id", "job_id", "status"))
    return [CompletionItem(r["id"], help=f"{r.get('job_id', '?')} {r.get('status', '?')}")
            for r in rows if r.get("id", "").startswith(incomplete)]


@_quietly
def complete_job(store, incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(name, help=f"deployment {deployment}")
            for name, deployment in sorted(store.deployments.job_names().items()) if name.startswith(incomplete)]


@_quietly
def complete_deployment(store, incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(name) for name in sorted(store.deployments.names()) if name.startswith(incomplete)]


@_quietly
def complete_execution_or_job(store, incomplete: str) -> list[CompletionItem]:
    return complete_execution.__wrapped__(store, incomplete) + complete_job.__wrapped__(store, incomplete)


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx, shell):
    """Print the completion script for SHELL: commands, options, execution ids, job and deployment
    names.

    \b
    bash:  eval "$(cronium completion bash)"      (in ~/.bashrc)
    zsh:   eval "$(cronium completion zsh)"       (in ~/.zshrc)
    fish:  cronium completion fish > ~/.config/fish/completions/cronium.fish
    """
    cls = get_completion_class(shell)
    click.echo(cls(ctx.find_root().command, {}, "cronium", "_CRONIUM_COMPLETE").source())


def register(cli: click.Group) -> None:
    cli.add_command(completion)
