"""HopSkipJump (label-only), DI/TI-FGSM and the transfer matrix (issue 28), on tiny models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlens.attacks import ATTACKS, AttackConfigError
from advlens.attacks.input_diversity import diverse_input, gaussian_kernel, smooth_gradient
from advlens.attacks.transfer import transfer_matrix


class Tiny(nn.Module):
    num_classes, input_size, class_names = 3, (3, 8, 8), ("a", "b", "c")

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 64, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x - 0.5)).flatten(1))


class Scrambled(nn.Module):
    """The same labels as ``inner``, but otherwise random logits on every call: an attack that reads
    only labels cannot tell the difference. Counts the images it is shown."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0
        self.num_classes, self.input_size, self.class_names = inner.num_classes, inner.input_size, inner.class_names
        self.gen = torch.Generator().manual_seed(123)

    def forward(self, x):
        self.calls += len(x)
        labels = self.inner(x).argmax(1)
        z = torch.rand(len(x), self.num_classes, generator=self.gen)
        z[torch.arange(len(x)), labels] = 2.0
        return z


@pytest.fixture(scope="module")
def data():
    model = Tiny().eval()
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(1)  # correctly classified by construction
    return model, x, y


@pytest.mark.parametrize("name,dist", [("hopskipjump", 2), ("hopskipjump_linf", float("inf"))])
def test_hopskipjump_label_only_counts_queries_and_shrinks(data, name, dist):
    model, x, y = data
    torch.manual_seed(0)
    a = ATTACKS[name](model, steps=6, init_evals=30)
    x_adv = a(x, y)
    with torch.no_grad():
        assert bool((model(x_adv).argmax(1) != y).all())
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    for curve in a.query_curve:
        queries = [q for q, _ in curve]
        assert queries == sorted(queries) and len(curve) == 8
        assert curve[-1][1] < 0.8 * curve[0][1]  # the distance shrinks with queries
    final = (x_adv - x).flatten(1).norm(p=dist, dim=1)
    assert torch.allclose(final, torch.tensor([c[-1][1] for c in a.query_curve]), atol=1e-5)

    # label-only: scrambled logits with the same labels give exactly the same attack and query count
    wrapped = Scrambled(model)
    torch.manual_seed(0)
    b = ATTACKS[name](wrapped, steps=6, init_evals=30)
    assert torch.equal(b(x, y), x_adv)
    assert torch.equal(b.queries, a.queries)
    assert wrapped.calls == int(b.queries.sum())  # every image the model saw is counted


def test_hopskipjump_leaves_a_misclassified_image_and_records_queries(data):
    model, x, y = data
    wrong = (y[:1] + 1) % 3
    torch.manual_seed(0)
    a = ATTACKS["hopskipjump"](model, steps=2, init_evals=20, record=True)
    out = a(x[:2], torch.cat([wrong, y[1:2]]))
    assert torch.equal(out[0], x[0]) and int(a.queries[0]) == 1
    steps = a.trajectory.step
    assert steps == sorted(steps) and steps[-1] == int(a.queries[0])
    assert bool(a.trajectory.success[-1][1])


class OneLabel(nn.Module):
    """Gives every input the label 0 (as an untrained network nearly does): no noise is adversarial."""

    num_classes, input_size, class_names = 3, (3, 8, 8), ("a", "b", "c")

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.tensor([[1.0, 0.0, 0.0]]).expand(len(x), 3) + 0 * self.w


@pytest.mark.parametrize("draws,queries", [(20, 1 + 20), (200, 1 + 200), (45, 1 + 50)])  # 10 draws per round
def test_hopskipjump_without_a_starting_point_spends_its_draws_and_says_so(draws, queries):
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    a = ATTACKS["hopskipjump"](OneLabel(), steps=3, start_draws=draws, record=True)
    out = a(x, torch.zeros(2, dtype=torch.long))
    assert torch.equal(out, x)  # nothing adversarial was found: the images come back as they were
    assert a.no_start.tolist() == [True, True] and a.trajectory.no_start.tolist() == [True, True]
    assert a.queries.tolist() == [queries, queries]  # the clean check, then every draw: no more


def test_the_attack_lab_names_a_missing_starting_point():
    from streamlit.testing.v1 import AppTest

    def page():
        import torch

        from advlens.attacks import ATTACKS, run_attack
        from dashboard.attack_views import query_section
        from tests.test_attacks_blackbox import OneLabel

        res = run_attack(OneLabel(), torch.rand(1, 3, 8, 8), 0, "hopskipjump", steps=2, start_draws=30, record=True)
        query_section(res, ATTACKS["hopskipjump"])

    at = AppTest.from_function(page, default_timeout=60).run()
    assert not at.exception
    (info,) = at.info
    assert info.value.startswith("No starting point: none of the 30 noise draws")
    assert "raise start_draws or use a gradient attack" in info.value


@pytest.mark.parametrize("name", ["difgsm", "tifgsm"])
def test_di_ti_fgsm_budget_box_and_success(data, name):
    model, x, y = data
    torch.manual_seed(0)
    eps = 0.1
    x_adv = ATTACKS[name](model, eps=eps, steps=5)(x, y)
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    with torch.no_grad():
        assert float((model(x_adv).argmax(1) != y).float().mean()) >= 0.5


def test_input_diversity_and_smoothing():
    x = torch.rand(2, 3, 16, 16)
    torch.manual_seed(0)
    out = diverse_input(x, 0.8, 1.0)
    assert out.shape == x.shape and not torch.equal(out, x)
    assert torch.equal(diverse_input(x, 0.8, 0.0), x)
    k = gaussian_kernel(5, 3, "cpu")
    assert torch.allclose(k.sum((1, 2, 3)), torch.ones(3))
    g = torch.zeros(1, 3, 9, 9)
    g[0, :, 4, 4] = 1
    s = smooth_gradient(g, 5)
    assert s.shape == g.shape and abs(float(s.sum()) - 3) < 1e-5 and float(s[0, 0, 4, 4]) < 1
    with pytest.raises(AttackConfigError, match="odd"):
        ATTACKS["tifgsm"](Tiny(), kernel_size=4)


def test_transfer_matrix(data):
    model, x, y = data
    other = Tiny(seed=1).eval()
    torch.manual_seed(0)
    tm = transfer_matrix({"a": model, "a_again": model, "b": other}, x, y, "difgsm", eps=0.2, steps=5)
    assert tm.names == ["a", "a_again", "b"] and len(tm.rate) == 3 and all(len(r) == 3 for r in tm.rate)
    assert all(0.0 <= v <= 1.0 for r in tm.rate for v in r)
    assert tm.rate[0][0] >= 0.5  # white-box on the diagonal
    assert tm.rate[0][1] == tm.rate[0][0]  # the same network as target: transfers fully
    d = tm.to_dict()
    assert d["n_per_target"][0] == 4 and "difgsm" in d["protocol"]
    with pytest.raises(AttackConfigError):
        transfer_matrix({"a": model}, x, y, "difgsm", eps=2.0)


def _transfer_page():
    from dashboard.model_picker import get_model
    from dashboard.transfer_section import transfer_section

    transfer_section("digits_small_cnn", get_model("digits_small_cnn"), ["mnist_small_cnn"])


def test_compare_page_transfer_section_shows_the_matrix():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_transfer_page, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.multiselect(key="tm_models").set_value(["digits_small_cnn", "mnist_small_cnn"])
    at.selectbox(key="tm_attack").set_value("fgsm")
    at.text_input(key="tm_eps").set_value("0.3")
    at.number_input(key="tm_n").set_value(6)
    at.selectbox(key="tm_dataset").set_value("digits")
    at.button(key="tm_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 1
    assert any("digits_small_cnn -> mnist_small_cnn" in c.value for c in at.caption)
