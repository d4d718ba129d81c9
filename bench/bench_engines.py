"""MMR's backtester against vectorbt and backtesting.py, side by side in one run, on one workload.

MA crossover 10/30, long-only, 100 shares, next-bar-open fills, 1 bp commission, 1,000,000 starting cash, on a
seeded random walk at four sizes (2,520 daily bars; 16k, 98k and 1M one-minute bars). Every engine's time
includes computing its signals, and each engine is checked against MMR's result (final equity to 1e-9 relative,
same number of closed trades) before its figure is printed.

Engines, each in its fastest documented configuration:
- MMR vectorized: `run_backtest(MACrossover(), bars)` (`signals()`; equity and 19 metrics computed; the
  `Trade` objects are built when `result.trades` is first read, so a second row reads it: the cost of the
  tens of thousands of `Trade`s and their timestamps at 1M bars);
- MMR bar-by-bar: `on_prices` per bar, `ma_crossover.py` (two means over the window per bar) and
  `ma_crossover_fast.py` (both averages from `precompute`, read per bar);
- vectorbt: `Portfolio.from_signals` on numpy arrays (no pandas index to convert), one call, then only the
  final value and the closed-trade count from its record array (less output than MMR's run, which also computes
  its metrics);
- backtesting.py: `Backtest(...).run()` with `self.I` indicators on a tz-naive frame (skipped at 1M bars unless
  `--all`: minutes per run).

Then 100 symbols × 2,520 daily bars in one run: MMR's dict of conIds against one 2-D vectorbt call (what the
retired bench_backtest.py compared with a per-symbol vectorbt loop and a tz-aware pandas index — not vectorbt's
fastest setup).

Warm figures are the median of several runs after one warm-up run (numba compiled/cached), the engines taking
turns. Cold figures start a
fresh Python process and time it to the first result (bars built in that process) at 2,520, 98k and 1M bars: MMR
on the Python fill loop, on the compiled one (numba's disk cache), as shipped (it picks the loop), and vectorbt.

Run: .venv/bin/python bench/bench_engines.py [--quick] [--all] [--cold (only the fresh-process table) | --no-cold]
"""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trader.simulation.backtester import Costs, run_backtest  # noqa: E402
from trader.strategy.loader import load_strategy_class  # noqa: E402

STRATEGIES = ROOT / "strategies"
CASH, SHARES, FEE_BPS, FAST, SLOW = 1_000_000.0, 100, 1.0, 10, 30
SIZES = [("2,520 daily", 2_520, "D"), ("16k 1-min", 16_000, "min"), ("98k 1-min", 98_000, "min"),
         ("1M 1-min", 1_000_000, "min")]


def bars(n: int, freq: str, seed: int = 7) -> pd.DataFrame:
    """A seeded random walk of `n` bars at `freq` (OHLCV, tz-aware UTC index)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.0002, n))
    idx = pd.date_range("2016-01-04", periods=n, freq=freq, tz="UTC")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.001,
                         "low": np.minimum(open_, close) * 0.999, "close": close, "volume": 1e5}, index=idx)


def mmr(cls, mode: str, build_trades: bool = False):
    def run(df: pd.DataFrame) -> tuple[float, int]:
        r = run_backtest(cls(), df, capital=CASH, quantity=SHARES, costs=Costs(commission_bps=FEE_BPS), mode=mode)
        return float(r.equity.iloc[-1]), len(r.trades) if build_trades else int(r.metrics["trade_count"])
    return run


def vectorbt_engine():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import vectorbt as vbt

    def run(df: pd.DataFrame) -> tuple[float, int]:
        close, open_ = df["close"].to_numpy(), df["open"].to_numpy()
        fast = pd.Series(close).rolling(FAST).mean().to_numpy()
        slow = pd.Series(close).rolling(SLOW).mean().to_numpy()
        long_ = fast > slow  # decided at bar t's close, filled at bar t+1's open
        held = np.concatenate(([False], long_[:-1]))
        before = np.concatenate(([False], held[:-1]))
        pf = vbt.Portfolio.from_signals(close, entries=held & ~before, exits=~held & before, price=open_,
                                        size=SHARES, init_cash=CASH, fees=FEE_BPS / 1e4, freq="1min")
        closed = int((pf.trades.values["status"] == 1).sum())  # the trade records, a numpy array
        return float(pf.final_value()), closed
    return run


def backtesting_engine():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from backtesting import Backtest, Strategy

    def sma(values, n):
        return pd.Series(values).rolling(n).mean().to_numpy()

    class Cross(Strategy):
        def init(self):
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self):
            if self.fast[-1] > self.slow[-1]:
                if not self.position:
                    self.buy(size=SHARES)
            elif self.position:
                self.position.close()

    def run(df: pd.DataFrame) -> tuple[float, int]:
        frame = df.rename(columns=str.capitalize).tz_localize(None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = Backtest(frame, Cross, cash=CASH, commission=FEE_BPS / 1e4, finalize_trades=False).run()
        return float(stats["Equity Final [$]"]), int(stats["# Trades"])
    return run


def timed(runs: dict, df: pd.DataFrame, repeats: dict[str, int]
          ) -> dict[str, tuple[float, tuple[float, int], float]]:
    """Median seconds, result and median CPU seconds (this process, all threads) per engine; the engines take
    turns (round robin) so that other load on the machine falls on all of them alike. CPU time leaves out the
    waits for a core that a loaded machine adds to the wall time."""
    outs = {name: run(df) for name, run in runs.items()}  # warm-up (numba compile or cache load, imports)
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(max(repeats.values())):
        for name, run in runs.items():
            if r < repeats[name]:
                t0, c0 = time.perf_counter(), time.process_time()
                run(df)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    return {name: (statistics.median(times[name]), outs[name], statistics.median(cpu[name])) for name in runs}


def panel_case(symbols: int = 100, n: int = 2_520, repeats: int = 3) -> None:
    """10 y daily × `symbols` in one run each: MMR's `run_backtest` over a dict of conIds (capital split equally)
    against ONE 2-D vectorbt `from_signals` call on numpy inputs (each column the same cash); the summed
    final values and closed-trade counts must agree."""
    frames = {i: bars(n, "D", seed=100 + i) for i in range(symbols)}
    cls = load_strategy_class(STRATEGIES, "ma_crossover.py")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import vectorbt as vbt

    def run_mmr() -> tuple[float, int]:
        r = run_backtest(cls(), frames, capital=CASH * symbols, quantity=SHARES, costs=Costs(commission_bps=FEE_BPS))
        return float(r.equity.iloc[-1]), int(r.metrics["trade_count"])

    def run_vbt() -> tuple[float, int]:
        close = np.column_stack([f["close"].to_numpy() for f in frames.values()])
        open_ = np.column_stack([f["open"].to_numpy() for f in frames.values()])
        c = pd.DataFrame(close)
        long_ = (c.rolling(FAST).mean() > c.rolling(SLOW).mean()).to_numpy()
        held = np.vstack([np.zeros((1, symbols), bool), long_[:-1]])
        before = np.vstack([np.zeros((1, symbols), bool), held[:-1]])
        pf = vbt.Portfolio.from_signals(close, entries=held & ~before, exits=~held & before, price=open_,
                                        size=SHARES, init_cash=CASH, fees=FEE_BPS / 1e4, freq="1D")
        return float(np.sum(pf.final_value())), int((pf.trades.values["status"] == 1).sum())

    out = {"MMR vectorized (dict of conIds)": run_mmr(), "vectorbt (one 2-D call, numpy)": run_vbt()}  # warm-up
    times: dict[str, list[float]] = {k: [] for k in out}
    cpu: dict[str, list[float]] = {k: [] for k in out}
    for _ in range(repeats):
        for name, fn in (("MMR vectorized (dict of conIds)", run_mmr), ("vectorbt (one 2-D call, numpy)", run_vbt)):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    ref = out["MMR vectorized (dict of conIds)"]
    print(f"\n{symbols} symbols × {n:,} daily bars in one run (median of {repeats}; load average "
          f"{os.getloadavg()[0]:.1f}):")
    rates = {}
    for name, (final, trades) in out.items():
        agree = abs(final - ref[0]) <= 1e-9 * abs(ref[0]) and trades == ref[1]
        rates[name] = symbols * n / statistics.median(times[name])
        print(f"  {name}: {rates[name] / 1e3:,.0f}k bars/s ({symbols * n / statistics.median(cpu[name]) / 1e3:,.0f}k "
              "per CPU second)" + ("" if agree else f" (DISAGREES: {final}/{trades})"))
    mmr_rate, vbt_rate = rates.values()
    print(f"  MMR / vectorbt: {mmr_rate / vbt_rate:.2f}×")


COLD = {
    "MMR vectorized": "from trader.simulation.backtester import run_backtest; "
                      "from trader.strategy.loader import load_strategy_class; "
                      "cls = load_strategy_class(STRATEGIES, 'ma_crossover.py'); "
                      "print(run_backtest(cls(), df, capital=CASH, quantity=SHARES).equity.iloc[-1])",
    "vectorbt": "print(vectorbt_engine()(df)[0])",
}
COLD_RUNS = (("MMR, Python fill loop", "MMR vectorized", {"MMR_FILL_LOOP": "python"}),
             ("MMR, compiled fill loop (numba disk cache)", "MMR vectorized", {"MMR_FILL_LOOP": "compiled"}),
             ("MMR as shipped (picks the loop)", "MMR vectorized", {}),
             ("vectorbt (numpy inputs)", "vectorbt", {}))


def cold(name: str, env: dict[str, str] | None = None, n: int = 2_520, freq: str = "D"
         ) -> tuple[float, float, float]:
    """Seconds from starting a fresh Python process to its first result (the bars built in the process), how
    many of them building the bars took, and the process's CPU seconds (user + system)."""
    code = (f"import time; t0 = time.perf_counter(); import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); "
            f"from bench_engines import *; t1 = time.perf_counter(); df = bars({n}, {freq!r}); "
            f"sys.stderr.write(f'{{time.perf_counter() - t1}}\\n'); {COLD[name]}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT, text=True,
                         env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, float(out.stderr.strip().splitlines()[-1]), cpu


def cold_table(sizes: list[tuple[str, int, str]], repeats: int = 3) -> None:
    """Fresh process to first result per size: MMR on each fill loop and as shipped, vectorbt; median of
    `repeats`, the runs taking turns."""
    print(f"\nfresh process to first result (median of {repeats}; seconds of wall time / of CPU time, bars built in "
          f"the process; load average {os.getloadavg()[0]:.1f})\n")
    print("| | " + " | ".join(s[0] for s in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    cells: dict[str, list[str]] = {label: [] for label, _, _ in COLD_RUNS}
    data: list[str] = []
    for _, n, freq in sizes:
        times: dict[str, list[float]] = {label: [] for label, _, _ in COLD_RUNS}
        cpu: dict[str, list[float]] = {label: [] for label, _, _ in COLD_RUNS}
        built: list[float] = []
        for _ in range(repeats):
            for label, name, env in COLD_RUNS:
                wall, bars_s, cpu_s = cold(name, env, n, freq)
                times[label].append(wall)
                cpu[label].append(cpu_s)
                built.append(bars_s)
        for label in cells:
            cells[label].append(f"{statistics.median(times[label]):.2f} / {statistics.median(cpu[label]):.2f}")
        data.append(f"{statistics.median(built):.2f}")
    for label, row in cells.items():
        print(f"| {label} | " + " | ".join(row) + " |")
    print("| of which building the bars | " + " | ".join(data) + " |")


def main() -> None:
    warnings.simplefilter("ignore")
    quick, everything = "--quick" in sys.argv, "--all" in sys.argv
    if "--cold" in sys.argv:  # only the fresh-process table
        cold_table(SIZES[:1] + SIZES[2:])
        return
    engines = {
        "MMR vectorized": mmr(load_strategy_class(STRATEGIES, "ma_crossover.py"), "vectorized"),
        "MMR vectorized, `result.trades` built": mmr(load_strategy_class(STRATEGIES, "ma_crossover.py"),
                                                     "vectorized", build_trades=True),
        "vectorbt (numpy inputs)": vectorbt_engine(),
        "MMR bar-by-bar, precompute": mmr(load_strategy_class(STRATEGIES, "ma_crossover_fast.py"), "bar-by-bar"),
        "MMR bar-by-bar, means per bar": mmr(load_strategy_class(STRATEGIES, "ma_crossover.py"), "bar-by-bar"),
        "backtesting.py": backtesting_engine(),
    }
    sizes = SIZES[:3] if quick else SIZES
    table: dict[str, list[str]] = {name: [] for name in engines}
    cpu_table: dict[str, list[str]] = {name: [] for name in engines}
    for label, n, freq in sizes:
        df = bars(n, freq)
        slow = {"backtesting.py", "MMR bar-by-bar, means per bar"}
        runs = {name: run for name, run in engines.items() if not (n >= 1_000_000 and name in slow and not everything)}
        repeats = {name: 1 if name in slow and n >= 98_000 else (5 if n >= 1_000_000 else 9) for name in runs}
        results = timed(runs, df, repeats)
        reference = results["MMR vectorized"][1]
        for name in engines:
            if name not in results:
                table[name].append("–")
                cpu_table[name].append("–")
                continue
            secs, (final, trades), cpu_secs = results[name]
            cpu_table[name].append(f"{n / cpu_secs / 1e3:,.0f}k")
            agree = abs(final - reference[0]) <= 1e-9 * abs(reference[0]) and trades == reference[1]
            table[name].append(f"{n / secs / 1e3:,.0f}k" + ("" if agree else
                                                             f" (DISAGREES: {final:.6f}/{trades} trades)"))
        print(f"{label}: {reference[1]} trades, final equity {reference[0]:,.4f}", file=sys.stderr)
    print(f"\nbars/s (median of warm runs; {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average "
          f"{os.getloadavg()[0]:.1f})\n")
    print("| engine | " + " | ".join(s[0] for s in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for name, cells in table.items():
        print(f"| {name} | " + " | ".join(cells) + " |")
    vec, vbt = table["MMR vectorized"], table["vectorbt (numpy inputs)"]
    ratios = [float(a.split("k")[0].replace(",", "")) / float(b.split("k")[0].replace(",", ""))
              for a, b in zip(vec, vbt, strict=True)]
    print("| MMR vectorized / vectorbt | " + " | ".join(f"{r:.2f}×" for r in ratios) + " |")
    print("\nbars per CPU second (the same runs' process CPU time)\n")
    print("| engine | " + " | ".join(s[0] for s in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for name, cells in cpu_table.items():
        print(f"| {name} | " + " | ".join(cells) + " |")
    panel_case(10 if quick else 100)
    if "--no-cold" not in sys.argv:
        cold_table(sizes)

if __name__ == "__main__":
    main()
