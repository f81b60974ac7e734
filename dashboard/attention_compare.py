"""The Attention page's "another model on the same image" section: a second model's clean and
adversarial maps (a shipped model beside an imported one, a standard one beside a robust one).

The adversarial image was made against the page's model, so for the second model it is a transfer
attack: its prediction may hold. The maps come from :func:`dashboard.cam_pair.cam_pair` (the second
model's own default CAM layer and settings, one colour scale for its two maps); the section only
calls the engine.
"""

from __future__ import annotations

import streamlit as st
import torch

from advlens.attribution.display import enlarge
from advlens.predict import top_k
from advlens.zoo import list_models
from dashboard.cam_pair import cam_pair
from dashboard.model_picker import model_picker
from dashboard.session_memo import session_memo
from dashboard.url_state import synced

KEY = "att_second"


def second_model_section(src) -> None:
    on = synced(
        st.toggle,
        f"{KEY}_on",
        False,
        "Compare with another model on the same image",
        help="Show a second model's attention maps on this clean and adversarial image.",
    )
    if not on:
        return
    size = tuple(src.model.input_size)
    entries = [e for e in list_models() if e.input_size == size and e.name != src.model_name]
    if not entries:
        st.info(f"No other model takes {'x'.join(map(str, size))} images; import one on the Home page.")
        return
    name, model = model_picker(KEY, "Second model", entries=entries)
    if model is None:
        return
    if tuple(model.input_size) != size:  # a transform chain cannot change the size, but a link can name anything
        st.error(f"{name} takes {'x'.join(map(str, model.input_size))} images, not {'x'.join(map(str, size))}.")
        return
    image = (name, *src.key)  # this model on this clean/adversarial pair: a new image or attack is a new key
    clean, adv = session_memo(("second_top1", *image), lambda: top_k(model, torch.cat([src.x, src.x_adv]), k=1))
    pair = cam_pair(model, src.x, src.x_adv, clean.indices[0], adv.indices[0], f"{KEY}_cam", image)
    if pair is None:
        return
    ov_clean, ov_adv, settings = pair
    held = clean.indices[0] == adv.indices[0]
    st.markdown(
        f"**{name}**: clean **{clean.names[0]}** ({clean.probs[0] * 100:.1f}%) → adversarial "
        f"**{adv.names[0]}** ({adv.probs[0] * 100:.1f}%) · the image was attacked on {src.model_name}, so this is "
        + ("a transfer attack, and the prediction **held**" if held else "a transfer attack that **changed** it")
    )
    cols = st.columns([1, 1, 1, 1.2])  # the widths of the page's own maps above
    cols[0].image(enlarge(ov_clean), caption=f"clean · {settings.label} for '{clean.names[0]}'", width="stretch")
    cols[1].image(enlarge(ov_adv), caption=f"adversarial · {settings.label} for '{adv.names[0]}'", width="stretch")
