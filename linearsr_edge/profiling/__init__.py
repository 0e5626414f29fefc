"""On-device latency profiling of bundles, by job: what ``linearsr-profile`` measures (`measure`), several bundles
side by side (`compare`), what fits a latency budget (`budget`), and the picture (`plot`). Pure NumPy; the plot
needs matplotlib."""

from linearsr_edge.profiling.budget import (
    BudgetAnswer,
    BudgetRow,
    budget_search,
    choose,
    format_budget,
    reference_order,
)
from linearsr_edge.profiling.compare import compare_rows, format_compare, gate_psnr
from linearsr_edge.profiling.measure import (
    ProfileReport,
    add_roofline,
    fit_frame,
    latency,
    peak_rss_bytes,
    profile,
    profile_many,
    to_json,
)
from linearsr_edge.profiling.plot import plot_report

__all__ = [
    "BudgetAnswer",
    "BudgetRow",
    "ProfileReport",
    "add_roofline",
    "budget_search",
    "choose",
    "compare_rows",
    "fit_frame",
    "format_budget",
    "format_compare",
    "gate_psnr",
    "latency",
    "peak_rss_bytes",
    "plot_report",
    "profile",
    "profile_many",
    "reference_order",
    "to_json",
]
