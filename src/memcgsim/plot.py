"""--plot: memory and swap of each cgroup over the steps of a run, with OOM kills and limit
changes marked. Draws with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

WIDTH_IN, HEIGHT_IN, DPI = 10, 6, 100


def _is_limit(name: str) -> bool:
    return "limit" in name or name in ("memory.max", "memory.high", "memory.swap.max")


def plot_run(result, out_path: str) -> None:
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'memcgsim[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # cgroup paths and file names are plain text: a "$" in one is not TeX math
    with matplotlib.rc_context({"text.parse_math": False}):
        _draw(plt, result, out_path)


def _draw(plt, result, out_path: str) -> None:
    fig, (ax_mem, ax_swap) = plt.subplots(2, 1, sharex=True, figsize=(WIDTH_IN, HEIGHT_IN),
                                          dpi=DPI)
    mib = float(1 << 20)
    for path, samples in result.series.items():
        steps = [s[0] + 1 for s in samples]
        (line,) = ax_mem.plot(steps, [s[1] / mib for s in samples], marker=".", label=path)
        ax_swap.plot(steps, [s[2] / mib for s in samples], marker=".", color=line.get_color(),
                     label=path)
        limits = [(s[0] + 1, s[3] / mib) for s in samples if s[3] is not None]
        if limits:
            ax_mem.step([x for x, _ in limits], [y for _, y in limits], where="post",
                        linestyle=":", color=line.get_color(), alpha=0.7)
    for st in result.steps:
        if st.detail.startswith("memcg OOM killer"):
            for ax in (ax_mem, ax_swap):
                ax.axvline(st.index + 1, color="red", linewidth=1)
            ax_mem.annotate("OOM kill", (st.index + 1, ax_mem.get_ylim()[1]), color="red",
                            fontsize=8, ha="left", va="top")
        if st.kind == "set" and any(_is_limit(w) for w, _ in
                                    result.scenario.steps[st.index].args.get("writes", ())):
            ax_mem.axvline(st.index + 1, color="grey", linestyle="--", linewidth=1)
    ax_mem.set_ylabel("memory (MiB)")
    ax_swap.set_ylabel("swap (MiB)")
    ax_swap.set_xlabel("step")
    ax_mem.set_title(f"{result.scenario.file}: kernel {result.scenario.machine.kernel}, "
                     f"cgroup {result.scenario.machine.cgroup}")
    if result.series:
        ax_mem.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=DPI)
    plt.close(fig)
