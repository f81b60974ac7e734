"""The Attack Lab's view of sparse and minimal-norm results (issue 28): the changed pixels of an L0
or L1 attack, and the minimal norm an FMN run found (one image's point of its robustness curve)."""

from __future__ import annotations

import streamlit as st

from advlens.attacks.sparse_display import mask_picture, sparse_summary

SPARSE_NORMS = ("L0", "L1")


def show_sparse(res, cls) -> None:
    measure = getattr(cls, "measure", None)  # FMN: the norm it minimises
    if cls.norm not in SPARSE_NORMS and measure is None:
        return
    x, x_adv = res.x[0], res.x_adv[0]
    info = sparse_summary(x, x_adv)
    if measure is not None:
        found = bool(res.success[0])
        shown = f"{info['values']} values" if measure == "L0" else None
        if measure == "L1":
            shown = f"{info['l1']:.4g}"
        elif measure == "L2":
            shown = f"{float(res.l2[0]):.4g}"
        elif measure == "Linf":
            shown = f"{float(res.linf[0]) * 255:.2f}/255"
        st.metric(
            f"Smallest {measure} perturbation found",
            shown if found else "none found",
            help="FMN searches for the smallest change that flips the class: this image stays correct "
            "for any budget below it (an upper bound on its true minimal norm).",
        )
    if cls.norm in SPARSE_NORMS or measure in SPARSE_NORMS:
        c1, c2 = st.columns(2)
        c1.image(
            mask_picture(x, x_adv),
            caption=f"changed pixels (red): {info['pixels']} of {info['of_pixels']}",
            width="stretch",
        )
        c2.metric("Changed pixels", f"{info['pixels']}", f"{info['values']} values", delta_color="off")
        c2.metric("L1", f"{info['l1']:.4g}")
