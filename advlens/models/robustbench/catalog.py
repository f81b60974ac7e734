"""The RobustBench catalogue: robust models of the literature by name, ``rb:<dataset>/<threat>/<name>``.

Each entry states its paper, the architecture and threat model, the clean and AutoAttack accuracy
RobustBench publishes (on the first 10,000 CIFAR-10 test images, or 5,000 ImageNet validation
images, in percent) and where its checkpoint comes from: a Google Drive file id, as in RobustBench's
``model_zoo``, or an HTTPS URL. The facts come from RobustBench's ``model_zoo/cifar10.py``,
``imagenet.py`` and ``model_info/*.json`` (commit 78fcc9e4, March 2025); the networks are ours
(:mod:`advlens.models.wide_resnet`, :mod:`~advlens.models.dm_wide_resnet`,
:mod:`~advlens.models.rb_resnet`, :mod:`~advlens.models.resnet_imagenet`), built with the parameter
names of the published checkpoints. ``layout`` names the checkpoint's key layout, which
``tests/fixtures/robustbench_layouts.json`` records from RobustBench's own definitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PREFIX = "rb:"
RAW = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # the network takes the [0, 1] image as it is
CIFAR = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
ENGSTROM = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # 2x - 1 (Hendrycks et al.)
RONY = ((0.491, 0.482, 0.447), (0.247, 0.243, 0.262))
AUGUSTIN = (
    (0.4913997551666284, 0.48215855929893703, 0.4465309133731618),
    (0.24703225141799082, 0.24348516474564, 0.26158783926049628),
)
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

# layout id -> (our architecture, its arch_kwargs); ids as in tests/fixtures/robustbench_layouts.json
LAYOUTS: dict[str, tuple[str, dict]] = {
    "wrn_28_10": ("wide_resnet", {"depth": 28, "width": 10}),
    "wrn_28_10_sub": ("wide_resnet", {"depth": 28, "width": 10, "sub_block1": True}),
    "wrn_34_10": ("wide_resnet", {"depth": 34, "width": 10}),
    "wrn_34_10_sub": ("wide_resnet", {"depth": 34, "width": 10, "sub_block1": True}),
    "wrn_34_10_mu": ("wide_resnet", {"depth": 34, "width": 10}),
    "wrn_34_20": ("wide_resnet", {"depth": 34, "width": 20}),
    "wrn_34_20_mu": ("wide_resnet", {"depth": 34, "width": 20}),
    "wrn_34_20_sub": ("wide_resnet", {"depth": 34, "width": 20, "sub_block1": True}),
    "wrn_70_16": ("wide_resnet", {"depth": 70, "width": 16}),
    "dm_28_10": ("dm_wide_resnet", {"depth": 28, "width": 10}),
    "dm_34_10": ("dm_wide_resnet", {"depth": 34, "width": 10}),
    "dm_34_20": ("dm_wide_resnet", {"depth": 34, "width": 20}),
    "dm_70_16": ("dm_wide_resnet", {"depth": 70, "width": 16}),
    "dm_106_16": ("dm_wide_resnet", {"depth": 106, "width": 16}),
    "preact18": ("rb_preact_resnet18", {}),
    "preact18_mu": ("rb_preact_resnet18", {}),
    "preact18_v2_mu": ("rb_preact_resnet18", {"final_bn": True}),
    "cifar_resnet18": ("cifar_resnet", {"depth": 18}),
    "cifar_resnet50_mu": ("cifar_resnet", {"depth": 50}),
    "cifar_resnet50_mu_augustin": ("cifar_resnet", {"depth": 50}),
    "tv_resnet18": ("imagenet_resnet", {"depth": 18}),
    "tv_resnet50": ("imagenet_resnet", {"depth": 50}),
    "tv_wide_resnet50_2": ("imagenet_resnet", {"depth": 50, "width_per_group": 128}),
}

GDRIVE_PAGE = "https://drive.google.com/file/d/{id}"


@dataclass(frozen=True)
class CatalogEntry:
    dataset: str  # "cifar10" or "imagenet"
    threat: str  # "Linf" or "L2"
    key: str  # RobustBench's model name, e.g. Carmon2019Unlabeled
    layout: str
    norm: tuple[tuple[float, ...], tuple[float, ...]]
    clean: float  # published clean accuracy, %
    autoattack: float  # published AutoAttack accuracy, %
    eps: str  # RobustBench's budget, as it writes it (8/255, 0.031, 0.5, 4/255)
    architecture: str  # as RobustBench names it
    paper: str
    venue: str
    link: str
    gdrive_id: str = ""
    extra_data: bool = False
    url: str = ""  # an HTTPS URL instead of a Drive id (torchvision's standard weights)
    sha256_prefix: str = ""  # a known prefix of the file's SHA-256 (torchvision writes one in its names)
    checkpoint_key: str = ""  # the file holds several state dicts: take this one ('last')
    input_side: int = 0  # 0: 32 for CIFAR-10, 224 for ImageNet
    preprocessing: str = ""  # RobustBench's ImageNet preprocessing (Res256Crop224, Crop288)
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.dataset}/{self.threat}/{self.key}"

    @property
    def arch(self) -> str:
        return LAYOUTS[self.layout][0]

    @property
    def arch_kwargs(self) -> dict:
        return dict(LAYOUTS[self.layout][1])

    @property
    def input_size(self) -> tuple[int, int, int]:
        side = self.input_side or (224 if self.dataset == "imagenet" else 32)
        return (3, side, side)

    @property
    def eps_value(self) -> float:
        num, _, den = self.eps.partition("/")
        return float(num) / float(den) if den else float(num)

    @property
    def source(self) -> str:
        return self.url or GDRIVE_PAGE.format(id=self.gdrive_id)

    @property
    def n_test(self) -> int:
        """How many test images RobustBench's published figures are on."""
        return 5000 if self.dataset == "imagenet" else 10000

    def describe(self) -> str:
        data = ", extra data" if self.extra_data else ""
        return (
            f"{self.paper} ({self.venue}); {self.architecture}, {self.threat} eps {self.eps}{data}; RobustBench: "
            f"clean {self.clean:.2f}%, AutoAttack {self.autoattack:.2f}%"
        )


def _e(
    dataset, threat, key, layout, norm, clean, aa, eps, architecture, paper, venue, link, gdrive_id, extra_data, **kw
):
    return CatalogEntry(
        dataset,
        threat,
        key,
        layout,
        norm,
        clean,
        aa,
        eps,
        architecture,
        paper,
        venue,
        link,
        gdrive_id,
        extra_data,
        **kw,
    )


# fmt: off
ENTRIES: tuple[CatalogEntry, ...] = (
    # cifar10, Linf
    _e("cifar10", "Linf", "Standard", "wrn_28_10", RAW, 94.78, 0.0, "8/255", "WideResNet-28-10", "Standardly trained model", "N/A", "https://github.com/RobustBench/robustbench/", "1t98aEuzeTL8P7Kpd5DIrCoCL21BNZUhC", False),
    _e("cifar10", "Linf", "Wong2020Fast", "preact18_mu", CIFAR, 83.34, 43.21, "8/255", "PreActResNet-18", "Fast is better than free: Revisiting adversarial training", "ICLR 2020", "https://arxiv.org/abs/2001.03994", "1Re--_lf3jCEw9bnQqGkjw3J7v2tSZKrv", False),
    _e("cifar10", "Linf", "Andriushchenko2020Understanding", "preact18", RAW, 79.84, 43.93, "8/255", "PreActResNet-18", "Understanding and Improving Fast Adversarial Training", "NeurIPS 2020", "https://arxiv.org/abs/2007.02617", "1Uyvprd98bIyxfMjLdCZwm-NEJ-6GMVis", False, checkpoint_key='last'),
    _e("cifar10", "Linf", "Carmon2019Unlabeled", "wrn_28_10_sub", RAW, 89.69, 59.53, "8/255", "WideResNet-28-10", "Unlabeled Data Improves Adversarial Robustness", "NeurIPS 2019", "https://arxiv.org/abs/1905.13736", "15tUx-gkZMYx7BfEOw1GY5OKC-jECIsPQ", True),
    _e("cifar10", "Linf", "Sehwag2020Hydra", "wrn_28_10_sub", RAW, 88.98, 57.14, "8/255", "WideResNet-28-10", "HYDRA: Pruning Adversarially Robust Neural Networks", "NeurIPS 2020", "https://arxiv.org/abs/2002.10509", "1pi8GHwAVkxVH41hEnf0IAJb_7y-Q8a2Y", True),
    _e("cifar10", "Linf", "Wang2020Improving", "wrn_28_10_sub", RAW, 87.5, 56.29, "8/255", "WideResNet-28-10", "Improving Adversarial Robustness Requires Revisiting Misclassified Examples", "ICLR 2020", "https://openreview.net/forum?id=rklOg6EFwS", "1T939mU4kXYt5bbvM55aT4fLBvRhyzjiQ", True),
    _e("cifar10", "Linf", "Hendrycks2019Using", "wrn_28_10", HALF, 87.11, 54.92, "8/255", "WideResNet-28-10", "Using Pre-Training Can Improve Model Robustness and Uncertainty", "ICML 2019", "https://arxiv.org/abs/1901.09960", "1-DcJsYw2dNEOyF9epks2QS7r9nqBDEsw", True),
    _e("cifar10", "Linf", "Rice2020Overfitting", "wrn_34_20_mu", CIFAR, 85.34, 53.42, "8/255", "WideResNet-34-20", "Overfitting in adversarially robust deep learning", "ICML 2020", "https://arxiv.org/abs/2002.11569", "1vC_Twazji7lBjeMQvAD9uEQxi9Nx2oG-", False),
    _e("cifar10", "Linf", "Zhang2019Theoretically", "wrn_34_10_sub", RAW, 84.92, 53.08, "0.031", "WideResNet-34-10", "Theoretically Principled Trade-off between Robustness and Accuracy", "ICML 2019", "https://arxiv.org/abs/1901.08573", "1hPz9QQwyM7QSuWu-ANG_uXR-29xtL8t_", False),
    _e("cifar10", "Linf", "Engstrom2019Robustness", "cifar_resnet50_mu", ENGSTROM, 87.03, 49.25, "8/255", "ResNet-50", "Robustness library", "GitHub,<br>Oct 2019", "https://github.com/MadryLab/robustness", "1etqmQsksNIWBvBQ4r8ZFk_3FJlLWr8Rr", False),
    _e("cifar10", "Linf", "Huang2020Self", "wrn_34_10_sub", RAW, 83.48, 53.34, "0.031", "WideResNet-34-10", "Self-Adaptive Training: beyond Empirical Risk Minimization", "NeurIPS 2020", "https://arxiv.org/abs/2002.10319", "1nInDeIyZe2G-mJFxQJ3UoclQNomWjMgm", False),
    _e("cifar10", "Linf", "Zhang2019You", "wrn_34_10_sub", RAW, 87.2, 44.83, "8/255", "WideResNet-34-10", "You Only Propagate Once: Accelerating Adversarial Training via Maximal Principle", "NeurIPS 2019", "https://arxiv.org/abs/1905.00877", "1kB2qqPQ8qUNmK8VKuTOhT1X4GT46kAoA", False),
    _e("cifar10", "Linf", "Zhang2020Attacks", "wrn_34_10_sub", RAW, 84.52, 53.51, "8/255", "WideResNet-34-10", "Attacks Which Do Not Kill Training Make Adversarial Learning Stronger", "ICML 2020", "https://arxiv.org/abs/2002.11242", "1lBVvLG6JLXJgQP2gbsTxNHl6s3YAopqk", False),
    _e("cifar10", "Linf", "Wu2020Adversarial_extra", "wrn_28_10_sub", RAW, 88.25, 60.04, "8/255", "WideResNet-28-10", "Adversarial Weight Perturbation Helps Robust Generalization", "NeurIPS 2020", "https://arxiv.org/abs/2004.05884", "1-WJWpAZLlmc4gJ8XXNf7IETjnSZzaCNp", True),
    _e("cifar10", "Linf", "Gowal2020Uncovering_70_16", "dm_70_16", CIFAR, 85.29, 57.2, "8/255", "WideResNet-70-16", "Uncovering the Limits of Adversarial Training against Norm-Bounded Adversarial Examples", "arXiv, Oct 2020", "https://arxiv.org/abs/2010.03593", "1DVwKclibqzniE2Ss5_g6BY77ChG8QKzl", False),
    _e("cifar10", "Linf", "Gowal2020Uncovering_70_16_extra", "dm_70_16", CIFAR, 91.1, 65.88, "8/255", "WideResNet-70-16", "Uncovering the Limits of Adversarial Training against Norm-Bounded Adversarial Examples", "arXiv, Oct 2020", "https://arxiv.org/abs/2010.03593", "1GxryYj_Or-VCDca0wgiFLz4ssXSZXQoJ", True),
    _e("cifar10", "Linf", "Gowal2020Uncovering_34_20", "dm_34_20", CIFAR, 85.64, 56.86, "8/255", "WideResNet-34-20", "Uncovering the Limits of Adversarial Training against Norm-Bounded Adversarial Examples", "arXiv, Oct 2020", "https://arxiv.org/abs/2010.03593", "1YWvZO1u9_yNLFNC3JYd_TVkvrRSMER1O", False),
    _e("cifar10", "Linf", "Gowal2020Uncovering_28_10_extra", "dm_28_10", CIFAR, 89.48, 62.8, "8/255", "WideResNet-28-10", "Uncovering the Limits of Adversarial Training against Norm-Bounded Adversarial Examples", "arXiv, Oct 2020", "https://arxiv.org/abs/2010.03593", "1MBAWGxiZxKt-GfqEqtLcXcd3tAxPhvV2", True),
    _e("cifar10", "Linf", "Sehwag2021Proxy", "wrn_34_10", RAW, 86.68, 60.27, "8/255", "WideResNet-34-10", "Robust Learning Meets Generative Models: Can Proxy Distributions Improve Adversarial Robustness?", "ICLR 2022", "https://arxiv.org/abs/2104.09425", "1QFA5fPMj2Qw4aYNG33PkFqiv_RTDWvzm", False),
    _e("cifar10", "Linf", "Sehwag2021Proxy_R18", "cifar_resnet18", RAW, 84.59, 55.54, "8/255", "ResNet-18", "Robust Learning Meets Generative Models: Can Proxy Distributions Improve Adversarial Robustness?", "ICLR 2022", "https://arxiv.org/abs/2104.09425", "1-ZgoSlD_AMhtXdnUElilxVXnzK2DcHuu", False),
    _e("cifar10", "Linf", "Sitawarin2020Improving", "wrn_34_10_sub", RAW, 86.84, 50.72, "8/255", "WideResNet-34-10", "Improving Adversarial Robustness Through Progressive Hardening", "arXiv, Mar 2020", "https://arxiv.org/abs/2003.09347", "12teknvo6dQGSWBaGnbNFwFO3-Y8j2eB6", False),
    _e("cifar10", "Linf", "Cui2020Learnable_34_20", "wrn_34_20_sub", RAW, 88.7, 53.57, "0.031", "WideResNet-34-20", "Learnable Boundary Guided Adversarial Training", "ICCV 2021", "https://arxiv.org/abs/2011.11164", "1y7BUxPhQjNlb4w4BUlDyYJIS4w4fsGiS", False),
    _e("cifar10", "Linf", "Cui2020Learnable_34_10", "wrn_34_10_sub", RAW, 88.22, 52.86, "0.031", "WideResNet-34-10", "Learnable Boundary Guided Adversarial Training", "ICCV 2021", "https://arxiv.org/abs/2011.11164", "16s9pi_1QgMbFLISVvaVUiNfCzah6g2YV", False),
    _e("cifar10", "Linf", "Zhang2020Geometry", "wrn_28_10_sub", RAW, 89.36, 59.64, "8/255", "WideResNet-28-10", "Geometry-aware Instance-reweighted Adversarial Training", "ICLR 2021", "https://arxiv.org/abs/2010.01736", "1UoG1JhbAps1MdMc6PEFiZ2yVXl_Ii5Jk", True),
    _e("cifar10", "Linf", "Rebuffi2021Fixing_28_10_cutmix_ddpm", "dm_28_10", CIFAR, 87.33, 60.75, "8/255", "WideResNet-28-10", "Fixing Data Augmentation to Improve Adversarial Robustness", "arXiv, Mar 2021", "https://arxiv.org/abs/2103.01946", "1-0EChXbc6pOvx26O17av263bCeqIAz6s", False),
    _e("cifar10", "Linf", "Rebuffi2021Fixing_70_16_cutmix_ddpm", "dm_70_16", CIFAR, 88.54, 64.25, "8/255", "WideResNet-70-16", "Fixing Data Augmentation to Improve Adversarial Robustness", "arXiv, Mar 2021", "https://arxiv.org/abs/2103.01946", "1-8CWRT-OFWyrz4T4s0I2mbFjPg8K_MUi", False),
    _e("cifar10", "Linf", "Rebuffi2021Fixing_70_16_cutmix_extra", "dm_70_16", CIFAR, 92.23, 66.58, "8/255", "WideResNet-70-16", "Fixing Data Augmentation to Improve Adversarial Robustness", "arXiv, Mar 2021", "https://arxiv.org/abs/2103.01946", "1qKDTp6IJ1BUXZaRtbYuo_t0tuDl_4mLg", True),
    _e("cifar10", "Linf", "Rebuffi2021Fixing_106_16_cutmix_ddpm", "dm_106_16", CIFAR, 88.5, 64.64, "8/255", "WideResNet-106-16", "Fixing Data Augmentation to Improve Adversarial Robustness", "arXiv, Mar 2021", "https://arxiv.org/abs/2103.01946", "1-4qnkveIkeWoGdF72kpEFHETiY3y4_tF", False),
    _e("cifar10", "Linf", "Rade2021Helper_extra", "dm_34_10", CIFAR, 91.47, 62.83, "8/255", "WideResNet-34-10", "Helper-based Adversarial Training: Reducing Excessive Margin to Achieve a Better Accuracy vs. Robustness Trade-off", "OpenReview, Jun 2021", "https://openreview.net/forum?id=BuD2LmNaU3a", "1GhAp-0C3ONRy9BxIe0J9vKc082vHvR7t", True),
    _e("cifar10", "Linf", "Rade2021Helper_ddpm", "dm_28_10", CIFAR, 88.16, 60.97, "8/255", "WideResNet-28-10", "Helper-based Adversarial Training: Reducing Excessive Margin to Achieve a Better Accuracy vs. Robustness Trade-off", "OpenReview, Jun 2021", "https://openreview.net/forum?id=BuD2LmNaU3a", "1AOF6LxnwgS5fCz_lVLYqs_wnUYuv6O7z", False),
    _e("cifar10", "Linf", "Addepalli2021Towards_RN18", "cifar_resnet18", RAW, 80.24, 51.06, "8/255", "ResNet-18", "Scaling Adversarial Training to Large Perturbation Bounds", "ECCV 2022", "https://arxiv.org/abs/2210.09852", "1-1DxecXz5U_xZ54DVdE-GVm71Tiox-Ri", False),
    _e("cifar10", "Linf", "Addepalli2021Towards_WRN34", "wrn_34_10_sub", RAW, 85.32, 58.04, "8/255", "WideResNet-34-10", "Scaling Adversarial Training to Large Perturbation Bounds", "ECCV 2022", "https://arxiv.org/abs/2210.09852", "1-3vgjTNfSq7LSMKuayEQ-jLflAP196dB", False),
    _e("cifar10", "Linf", "Gowal2021Improving_70_16_ddpm_100m", "dm_70_16", CIFAR, 88.74, 66.11, "8/255", "WideResNet-70-16", "Improving Robustness using Generated Data", "NeurIPS 2021", "https://arxiv.org/abs/2110.09468", "10qBoDG_NomJBrRFeTsSwEcJF1GA-sjC4", False),
    _e("cifar10", "Linf", "Gowal2021Improving_28_10_ddpm_100m", "dm_28_10", CIFAR, 87.5, 63.44, "8/255", "WideResNet-28-10", "Improving Robustness using Generated Data", "NeurIPS 2021", "https://arxiv.org/abs/2110.09468", "12L8YE6VBgUDKyW6GMSNefSYj2gg4LEKx", False),
    _e("cifar10", "Linf", "Chen2021LTD_WRN34_10", "wrn_34_10", RAW, 85.21, 56.94, "8/255", "WideResNet-34-10", "LTD: Low Temperature Distillation for Robust Adversarial Training", "arXiv, Nov 2021", "https://arxiv.org/abs/2111.02331", "1-0RoQKYvHLNh7hZ71wJjSit1XtrJQo9D", False),
    _e("cifar10", "Linf", "Chen2021LTD_WRN34_20", "wrn_34_20", RAW, 86.03, 57.71, "8/255", "WideResNet-34-20", "LTD: Low Temperature Distillation for Robust Adversarial Training", "arXiv, Nov 2021", "https://arxiv.org/abs/2111.02331", "1-5JmY9rapuGwCUc2nPvy7Rb_sn_dHhFm", False),
    _e("cifar10", "Linf", "Pang2022Robustness_WRN28_10", "dm_28_10", CIFAR, 88.61, 61.04, "8/255", "WideResNet-28-10", " Robustness and Accuracy Could Be Reconcilable by (Proper) Definition", "ICML 2022", "https://arxiv.org/pdf/2202.10103.pdf", "16ChNkterCp17BXv-xxqpfedb4u2_CjjS", False),
    _e("cifar10", "Linf", "Pang2022Robustness_WRN70_16", "dm_70_16", CIFAR, 89.01, 63.35, "8/255", "WideResNet-70-16", " Robustness and Accuracy Could Be Reconcilable by (Proper) Definition", "ICML 2022", "https://arxiv.org/pdf/2202.10103.pdf", "1uQZYUuUiL9BzaQUeXLhjr_RhoyFRrHe3", False),
    _e("cifar10", "Linf", "Jia2022LAS-AT_34_10", "wrn_34_10", RAW, 84.98, 56.26, "8/255", "WideResNet-34-10", "LAS-AT: Adversarial Training with Learnable Attack Strategy", "arXiv, Mar 2022", "https://arxiv.org/abs/2203.06616", "1-3l7xKhIPyes3O4QSz0HU6L-hfOoS0xD", False),
    _e("cifar10", "Linf", "Jia2022LAS-AT_70_16", "wrn_70_16", RAW, 85.66, 57.61, "8/255", "WideResNet-70-16", "LAS-AT: Adversarial Training with Learnable Attack Strategy", "arXiv, Mar 2022", "https://arxiv.org/abs/2203.06616", "1-4p-Gr0hjl8wq6qvvTza4x4a5Rmu-Bfr", False),
    # cifar10, L2
    _e("cifar10", "L2", "Standard", "wrn_28_10", RAW, 94.78, 0.0, "0.5", "WideResNet-28-10", "Standardly trained model", "N/A", "https://github.com/RobustBench/robustbench/", "1t98aEuzeTL8P7Kpd5DIrCoCL21BNZUhC", False),
    _e("cifar10", "L2", "Engstrom2019Robustness", "cifar_resnet50_mu", ENGSTROM, 90.83, 69.24, "0.5", "ResNet-50", "Robustness library", "GitHub,<br>Sep 2019", "https://github.com/MadryLab/robustness", "1O8rGa6xOUIRwQ-M4ESrCjzknby8TM2ZE", False),
    _e("cifar10", "L2", "Rice2020Overfitting", "preact18_v2_mu", CIFAR, 88.67, 67.68, "0.5", "PreActResNet-18", "Overfitting in adversarially robust deep learning", "ICML 2020", "https://arxiv.org/abs/2002.11569", "1jo-31utiYNBVzLM0NxUEWz0teo3Z0xa7", False),
    _e("cifar10", "L2", "Rony2019Decoupling", "wrn_28_10", RONY, 89.05, 66.44, "0.5", "WideResNet-28-10", "Decoupling Direction and Norm for Efficient Gradient-Based L2 Adversarial Attacks and Defenses", "CVPR 2019", "https://arxiv.org/abs/1811.09600", "1Oua2ZYSxNvoDrtlY9vTtRzyBWHziE4Uy", False),
    _e("cifar10", "L2", "Augustin2020Adversarial", "cifar_resnet50_mu_augustin", AUGUSTIN, 91.08, 72.91, "0.5", "ResNet-50", "Adversarial Robustness on In- and Out-Distribution Improves Explainability", "ECCV 2020", "https://arxiv.org/abs/2003.09461", "1oDghrzNfkStC2wr5Fq8T896yNV4wVG4d", True),
    _e("cifar10", "L2", "Augustin2020Adversarial_34_10", "wrn_34_10_mu", AUGUSTIN, 92.23, 76.25, "0.5", "WideResNet-34-10", "Adversarial Robustness on In- and Out-Distribution Improves Explainability", "ECCV 2020", "https://arxiv.org/abs/2003.09461", "1qPsKS546mKcs71IEhzOS-kLpQFSFhaKL", True),
    _e("cifar10", "L2", "Sehwag2021Proxy", "wrn_34_10", RAW, 90.93, 77.24, "0.5", "WideResNet-34-10", "Robust Learning Meets Generative Models: Can Proxy Distributions Improve Adversarial Robustness?", "ICLR 2022", "https://arxiv.org/abs/2104.09425", "1UviikNzpltVFsgMuqQ8YhpmvGczGRS4S", False),
    _e("cifar10", "L2", "Sehwag2021Proxy_R18", "cifar_resnet18", RAW, 89.76, 74.41, "0.5", "ResNet-18", "Robust Learning Meets Generative Models: Can Proxy Distributions Improve Adversarial Robustness?", "ICLR 2022", "https://arxiv.org/abs/2104.09425", "1zPjjZj9wujBNkAmHHHIikem6_aIjMhXG", False),
    _e("cifar10", "L2", "Gowal2020Uncovering", "dm_70_16", CIFAR, 90.9, 74.5, "0.5", "WideResNet-70-16", "Uncovering the Limits of Adversarial Training against Norm-Bounded Adversarial Examples", "arXiv, Oct 2020", "https://arxiv.org/abs/2010.03593", "1QL4SNvYydjIg1uI3VP9SyNt-2kTXRisG", False),
    _e("cifar10", "L2", "Rebuffi2021Fixing_28_10_cutmix_ddpm", "dm_28_10", CIFAR, 91.79, 78.8, "0.5", "WideResNet-28-10", "Fixing Data Augmentation to Improve Adversarial Robustness", "arXiv, Mar 2021", "https://arxiv.org/abs/2103.01946", "1-DUKcvfDzeWwt0NK7q2XvU-dIi8up8B0", False),
    _e("cifar10", "L2", "Rebuffi2021Fixing_70_16_cutmix_ddpm", "dm_70_16", CIFAR, 92.41, 80.42, "0.5", "WideResNet-70-16", "Fixing Data Augmentation to Improve Adversarial Robustness", "arXiv, Mar 2021", "https://arxiv.org/abs/2103.01946", "1-8ECIOYF4JB0ywxJOmhkefnv4TW-KuXp", False),
    _e("cifar10", "L2", "Wang2023Better_WRN-28-10", "dm_28_10", CIFAR, 95.16, 83.68, "0.5", "WideResNet-28-10", "Better Diffusion Models Further Improve Adversarial Training", "ICML 2023", "https://arxiv.org/abs/2302.04638", "1-fwKiJXEqHHUngt8wKsNnHuD4vAPvPXC", False),
    # imagenet, Linf
    _e("imagenet", "Linf", "Standard_R50", "tv_resnet50", IMAGENET, 76.52, 0.0, "4/255", "ResNet-50", "Standardly trained model", "N/A", "https://github.com/RobustBench/robustbench/", "", False, url='https://download.pytorch.org/models/resnet50-0676ba61.pth', sha256_prefix='0676ba61'),
    _e("imagenet", "Linf", "Wong2020Fast", "tv_resnet50", IMAGENET, 55.62, 26.24, "4/255", "ResNet-50", "Fast is better than free: Revisiting adversarial training", "ICLR 2020", "https://arxiv.org/abs/2001.03994", "1deM2ZNS5tf3S_-eRURJi-IlvUL8WJQ_w", False, input_side=288, preprocessing='Crop288'),
    _e("imagenet", "Linf", "Engstrom2019Robustness", "tv_resnet50", IMAGENET, 62.56, 29.22, "4/255", "ResNet-50", "Robustness library", "GitHub,<br>Oct 2019", "https://github.com/MadryLab/robustness", "1T2Fvi1eCJTeAOEzrH_4TAIwO8HTOYVyn", False),
    _e("imagenet", "Linf", "Salman2020Do_R50", "tv_resnet50", IMAGENET, 64.02, 34.96, "4/255", "ResNet-50", "Do Adversarially Robust ImageNet Models Transfer Better?", "NeurIPS 2020", "https://arxiv.org/abs/2007.08489", "1TmT5oGa1UvVjM3d-XeSj_XmKqBNRUg8r", False),
    _e("imagenet", "Linf", "Salman2020Do_R18", "tv_resnet18", IMAGENET, 52.92, 25.32, "4/255", "ResNet-18", "Do Adversarially Robust ImageNet Models Transfer Better?", "NeurIPS 2020", "https://arxiv.org/abs/2007.08489", "1OThCOQCOxY6lAgxZxgiK3YuZDD7PPfPx", False),
    _e("imagenet", "Linf", "Salman2020Do_50_2", "tv_wide_resnet50_2", IMAGENET, 68.46, 38.14, "4/255", "WideResNet-50-2", "Do Adversarially Robust ImageNet Models Transfer Better?", "NeurIPS 2020", "https://arxiv.org/abs/2007.08489", "1OT7xaQYljrTr3vGbM37xK9SPoPJvbSKB", False),
)
# fmt: on

CATALOG: dict[str, CatalogEntry] = {e.name: e for e in ENTRIES}


def is_robustbench_name(name: str) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def get_catalog_entry(name: str) -> CatalogEntry:
    """The entry called ``rb:<dataset>/<threat>/<name>``; KeyError says what exists."""
    entry = CATALOG.get(name)
    if entry is not None:
        return entry
    if not is_robustbench_name(name):
        raise KeyError(f"{name!r} is not a RobustBench name (rb:<dataset>/<threat>/<model>)")
    close = [e.name for e in ENTRIES if e.key.lower() == name.rsplit("/", 1)[-1].lower()]
    hint = f"; did you mean {', '.join(close)}?" if close else "; `python -m advlens models --robustbench` lists them"
    raise KeyError(f"{name!r} is not in the RobustBench catalogue{hint}")


def list_catalog(dataset: str | None = None, threat: str | None = None) -> list[CatalogEntry]:
    return [e for e in ENTRIES if (dataset is None or e.dataset == dataset) and (threat is None or e.threat == threat)]


def approx_bytes(entry: CatalogEntry) -> int:
    """The float32 size of the entry's weights (parameters and buffers), from its layout: the table
    below (the model picker lists every entry's size, and building the 23 networks on the meta device
    takes seconds), or built once for a layout not in it."""
    known = LAYOUT_BYTES.get(entry.layout)
    return known if known is not None else _BUILT_BYTES.setdefault(entry.layout, _layout_bytes(entry))


# float32 bytes of our network's state dict per layout (`_layout_bytes`; tests/test_robustbench.py checks it)
LAYOUT_BYTES: dict[str, int] = {
    "wrn_28_10": 145988684,
    "wrn_28_10_sub": 152560492,
    "wrn_34_10": 184731748,
    "wrn_34_10_sub": 193151884,
    "wrn_34_10_mu": 184731748,
    "wrn_34_20": 738306148,
    "wrn_34_20_mu": 738306148,
    "wrn_34_20_sub": 771734924,
    "wrn_70_16": 1067501812,
    "dm_28_10": 145988684,
    "dm_34_10": 184731748,
    "dm_34_20": 738306148,
    "dm_70_16": 1067501812,
    "dm_106_16": 1662388612,
    "preact18": 44711784,
    "preact18_mu": 44711784,
    "preact18_v2_mu": 44719980,
    "cifar_resnet18": 44734328,
    "cifar_resnet50_mu": 94296060,
    "cifar_resnet50_mu_augustin": 94296060,
    "tv_resnet18": 46796528,
    "tv_resnet50": 102440820,
    "tv_wide_resnet50_2": 275806068,
}
_BUILT_BYTES: dict[str, int] = {}


def _layout_bytes(entry: CatalogEntry) -> int:
    import torch

    from ..registry import build_model

    with torch.device("meta"):
        net = build_model(entry.arch, arch_kwargs=entry.arch_kwargs, input_size=entry.input_size)
    return sum(math.prod(v.shape) * 4 for v in net.state_dict().values())
