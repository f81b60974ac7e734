"""The guided experiments of the Lessons page: content only (text, formulas, links), no logic.

Each :class:`Lesson` states its goal, explains the idea with a formula, and opens the pages it
uses in a prepared state through links (:class:`Step`: a page and its URL parameters; every page
keeps its whole state in the URL). It says what to look for and ends with a question and its
answer. ``tests/test_lessons.py`` opens every link in a browser and checks that its page shows the
promised state (``expect``: texts on the page or values in its fields).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    label: str
    page: str  # the page's URL path (a key of dashboard.links.PAGE_FILES)
    params: dict
    expect: tuple[str, ...] = ()  # texts the page must show (or hold in a field): checked by the browser test


@dataclass(frozen=True)
class Lesson:
    slug: str
    title: str
    goal: str
    idea: str  # Markdown
    formula: str  # LaTeX
    steps: tuple[Step, ...]
    look_for: str  # Markdown
    question: str
    answer: str
    needs: tuple[str, ...] = ()  # RobustBench models it downloads (the Lessons page offers their download)


MNIST_7 = "MNIST 7 (test #0)"
MNIST_4 = "MNIST 4 (test #4)"
# a 3 that PGD at 0.15 turns into an 8 (picked when Grad-CAM's default layer was conv2, whose map was
# all zero on most MNIST samples; at relu2, the default since issue 30, every clean map shows something)
MNIST_3 = "MNIST 3 (test #18)"
CIFAR_CAT = "CIFAR-10 cat (test #3000)"
CIFAR_SHIP = "CIFAR-10 ship (test #8000)"
CIFAR_DOG = "CIFAR-10 dog (test #5000)"  # the bird patch turns these two into birds (issue 28)
CIFAR_HORSE = "CIFAR-10 horse (test #7001)"


def _digit(index: int) -> dict:
    """The shipped digits model on test digit ``index`` (sklearn digits; the MNIST samples are not its domain)."""
    return {"model": "digits_small_cnn", "image_src": "Dataset item", "image_ds": "digits", "image_idx": str(index)}


def _lab(model: str, image: str, attack: str, **params) -> dict:
    return {"model": model, "image_src": "Sample", "image_sample": image, "attack": attack, **params}


RB_STANDARD = "rb:cifar10/Linf/Standard"
RB_ROBUST = "rb:cifar10/Linf/Carmon2019Unlabeled"


def _lens(model: str, image: str, method: str) -> dict:
    """The Attention page on its own (not the Attack Lab's example): ``model`` on sample ``image``, one map."""
    return {"att_other": "1", "model": model, "image_src": "Sample", "image_sample": image, "att_method": method}


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "one-step-or-many",
        "One step or many: FGSM against PGD",
        "See why a single gradient step underestimates what an attacker can do, and why evaluations use many.",
        "FGSM (Goodfellow et al. 2015) takes one step of size eps along the sign of the loss gradient. PGD "
        "(Madry et al. 2018) takes many small steps and projects back into the eps-ball after each. The loss "
        "surface is not linear, so the one long step can overshoot or point the wrong way, while PGD follows "
        "the surface.",
        r"x_{\mathrm{FGSM}} = x + \epsilon\,\mathrm{sign}\big(\nabla_x L(f(x), y)\big), \qquad "
        r"x_{t+1} = \Pi_{\|x' - x\|_\infty \le \epsilon}\big(x_t + \alpha\,\mathrm{sign}(\nabla_x L(f(x_t), y))\big)",
        (
            Step(
                "FGSM on the robust MNIST model, eps 0.35",
                "attack",
                _lab("mnist_small_cnn_pgd_at", MNIST_4, "fgsm", eps="0.35"),
                ("mnist_small_cnn_pgd_at", "FGSM", "0.35"),
            ),
            Step(
                "PGD-40 at the same eps, same image",
                "attack",
                _lab("mnist_small_cnn_pgd_at", MNIST_4, "pgd", eps="0.35", steps="40", restarts="1"),
                ("mnist_small_cnn_pgd_at", "PGD (L-inf)", "40"),
            ),
        ),
        "Compare **Success** and the confidence in the true class after each attack, then press **Compare all "
        "attacks** under *Every attack on this image*: the table puts FGSM, PGD, APGD and the others side by side, "
        "with each one's smallest eps. This model was trained against PGD at eps 0.3, so 0.35 is just beyond "
        "its budget: PGD gets through, FGSM does not. On the first 20 MNIST samples at 0.35, FGSM flips 3 and "
        "PGD-40 flips 13.",
        "If FGSM fails on an image at eps 0.35, is the model robust there?",
        "No. FGSM failing only means that one linear step did not work. PGD, APGD or a black-box attack may "
        "still succeed at the same eps; only a strong, varied attack (the standard suite) gives a trustworthy "
        "figure, and even that is an upper bound on robust accuracy.",
    ),
    Lesson(
        "how-big-is-eps",
        "How big is eps? Perceptibility",
        "Get a feel for L-inf budgets: what 1/255, 8/255 and 32/255 look like on a natural image.",
        "An L-inf budget bounds the change of every pixel. 8/255 (about 3% of the range) is the standard CIFAR-10 "
        "budget; 0.3 is MNIST's, because its digits are almost binary. The same number means very different "
        "things on different images.",
        r"\|\delta\|_\infty = \max_i |\delta_i| \le \epsilon, \qquad \epsilon = 8/255 \approx 0.031",
        (
            Step(
                "PGD at 2/255 on a CIFAR-10 cat",
                "attack",
                _lab("cifar10_resnet20", CIFAR_CAT, "pgd", eps="2/255", steps="10"),
                ("cifar10_resnet20", "CIFAR-10 cat (test #3000)", "2/255"),
            ),
            Step(
                "PGD at 32/255 on the same cat",
                "attack",
                _lab("cifar10_resnet20", CIFAR_CAT, "pgd", eps="32/255", steps="10"),
                ("cifar10_resnet20", "CIFAR-10 cat (test #3000)", "32/255"),
            ),
        ),
        "Look at the adversarial image next to the clean one (the middle picture is the perturbation, amplified). "
        "At 2/255 you cannot see it, yet the standard model is usually fooled. At 32/255 the noise is plain to see. "
        "Then press **Sweep** under *Sweep eps*: the chart shows at which budget the prediction changes.",
        "A standard CIFAR-10 model is fooled at 2/255. Is a budget of 8/255 then a fair test of a defense?",
        "Yes, 8/255 is still hard to see on most CIFAR-10 images. It is the community's standard budget, so "
        "figures can be compared. But an attacker is not bound to it: report robustness at several budgets "
        "(the Evaluate page's curves).",
    ),
    Lesson(
        "attention-scatters",
        "Attention deviates and scatters when an attack succeeds",
        "Check the claim of Wu et al. (seed 002): a successful attack moves Grad-CAM's attention away from the "
        "object and spreads it out.",
        "Grad-CAM weights a layer's feature maps by the average gradient of the class score. Compare the clean "
        "and the adversarial map: their top-k% regions overlap less (lower IoU) when the attack succeeds, and "
        "the adversarial map is more spread out (higher entropy).",
        r"L^c_{\mathrm{CAM}} = \mathrm{ReLU}\Big(\sum_k \alpha^c_k A^k\Big),\quad "
        r"\alpha^c_k = \frac{1}{Z}\sum_{i,j}\frac{\partial y^c}{\partial A^k_{ij}},\qquad "
        r"\mathrm{IoU} = \frac{|T_k(M) \cap T_k(M')|}{|T_k(M) \cup T_k(M')|}",
        (
            Step(
                "Attention of the MNIST model on a 3, PGD at 0.15",
                "attention",
                {
                    "att_other": "1",
                    "model": "mnist_small_cnn",
                    "image_src": "Sample",
                    "image_sample": MNIST_3,
                    "att_eps": "0.15",
                    "att_method": "gradcam",
                },
                ("mnist_small_cnn", MNIST_3, "Grad-CAM"),
            ),
            Step(
                "The batch analysis on 100 MNIST test images",
                "attention",
                {
                    "att_other": "1",
                    "model": "mnist_small_cnn",
                    "image_src": "Sample",
                    "image_sample": MNIST_3,
                    "att_eps": "0.15",
                    "ana_ds": "mnist_samples",
                    "ana_n": "100",
                    "ana_eps": "0.1",
                },
                ("mnist_small_cnn", "Dataset analysis", "0.1"),
            ),
        ),
        "On the single image: the IoU and the centre-of-mass shift in the metrics table. In the second link, open "
        "*Dataset analysis* and press **Run the analysis**: the table compares the successful and the failed "
        "attacks, with p-values.",
        "Is a low IoU between the clean and adversarial map a reliable detector of attacks?",
        "Not on its own. The groups overlap (the distributions in the chart), so a threshold on IoU misses many "
        "attacks or flags many clean images; and an attacker who knows the detector can add a term to keep the "
        "map in place.",
    ),
    Lesson(
        "feature-noise",
        "Perturbations grow into feature noise, and denoising removes it",
        "See the effect seed 001 (Xie et al. 2019) builds on: a small pixel perturbation becomes large noise "
        "in the feature maps, which a denoising operation can reduce.",
        "Measure how far the adversarial features are from the clean ones at each stage, relative to their size. "
        "Xie et al. insert denoising blocks (a non-local mean, a median, ...) with a residual 1x1 convolution "
        "into the network and train it adversarially.",
        r"d_\ell = \frac{\|f_\ell(x + \delta) - f_\ell(x)\|_2}{\|f_\ell(x)\|_2}, \qquad "
        r"y = x + W_{1\times1}\,D(x)",
        (
            Step(
                "Feature maps of the CIFAR-10 ResNet-20 under PGD at 8/255",
                "features",
                {
                    "feat_other": "1",
                    "model": "cifar10_resnet20",
                    "image_src": "Sample",
                    "image_sample": CIFAR_SHIP,
                    "feat_eps": "8/255",
                    "feat_op": "nonlocal_gaussian",
                },
                ("cifar10_resnet20", "CIFAR-10 ship (test #8000)", "8/255"),
            ),
        ),
        "The *divergence across depth* chart: the relative divergence grows from the first convolution to the last "
        "stage. Under *Denoising*, compare the noise before and after the operator for the clean and the "
        "adversarial features.",
        "If the bare denoising operator removes much of the feature noise, why do Xie et al. still train the "
        "network adversarially?",
        "Because the operator also blurs the clean features and an attacker adapts to it: without adversarial "
        "training, the attack simply finds a perturbation whose features survive the denoising. The blocks help "
        "as part of an adversarially trained network, not as a filter on their own.",
    ),
    Lesson(
        "robustness-tradeoff",
        "The robustness-accuracy trade-off",
        "Compare a standard and an adversarially trained model, on one image and on a test set.",
        "Adversarial training (Madry et al. 2018) minimises the loss at the worst point of the eps-ball. The robust "
        "model resists attacks at its training budget, and usually pays in clean accuracy: little on MNIST, a lot "
        "on CIFAR-10 (Tsipras et al. 2019).",
        r"\min_\theta\ \mathbb{E}_{(x,y)}\Big[\max_{\|\delta\|_\infty \le \epsilon} L\big(f_\theta(x+\delta), y\big)\Big]",
        (
            Step(
                "Standard vs PGD-trained MNIST model under PGD at 0.3",
                "compare",
                {
                    "cmp_a": "mnist_small_cnn",
                    "cmp_b": "mnist_small_cnn_pgd_at",
                    "cmp_image_src": "Sample",
                    "cmp_image_sample": MNIST_7,
                    "cmp_attack": "pgd",
                    "cmp_p_eps": "0.3",
                    "cmp_p_steps": "40",
                },
                ("mnist_small_cnn_pgd_at", "PGD (L-inf)", "0.3"),
            ),
            Step(
                "Both on 100 MNIST test images (quick suite)",
                "evaluate",
                {
                    "ev_models": "mnist_small_cnn,mnist_small_cnn_pgd_at",
                    "ev_dataset": "mnist_samples",
                    "ev_n": "100",
                    "ev_suite": "quick",
                    "ev_eps": "0.1, 0.2, 0.3",
                },
                ("mnist_small_cnn_pgd_at", "mnist_samples", "0.1, 0.2, 0.3"),
            ),
            Step(
                "The CIFAR-10 pair: clean accuracy is the price",
                "compare",
                {
                    "cmp_a": "cifar10_resnet20",
                    "cmp_b": "cifar10_resnet20_fast_at",
                    "cmp_image_src": "Sample",
                    "cmp_image_sample": CIFAR_CAT,
                    "cmp_attack": "pgd",
                    "cmp_p_eps": "8/255",
                },
                ("cifar10_resnet20_fast_at", "PGD (L-inf)", "8/255"),
            ),
        ),
        "Press **Attack both**: the standard model is fooled, the robust one holds. On the Evaluate page, "
        "**Start evaluation** and watch both curves: the standard model falls to 0 by eps 0.1, the robust one "
        "stays high up to its training eps 0.3. The models table on Home gives the clean accuracies: the "
        "CIFAR-10 robust model loses far more than the MNIST one.",
        "Why does adversarial training cost more clean accuracy on CIFAR-10 than on MNIST?",
        "MNIST digits are nearly binary: thresholding the pixels removes an eps 0.3 perturbation and keeps the "
        "digit, so robust and accurate features coincide. CIFAR-10's useful features include fine textures that "
        "an 8/255 perturbation can fake; a robust model must give them up.",
    ),
    Lesson(
        "false-robustness",
        "False robustness: a JPEG defense under PGD, then under BPDA",
        "Watch an input-transform defense look perfect and then fall to an adaptive attack (Athalye et al. 2018).",
        "JPEG compression in front of the model has no useful gradient, so plain PGD gets nothing to climb. BPDA "
        "(Backward Pass Differentiable Approximation) uses the transform in the forward pass and the identity in "
        "the backward pass; EOT averages gradients over the draws of a random transform.",
        r"\nabla_x f(g(x)) \approx \nabla_z f(z)\big|_{z = g(x)} \quad (\text{BPDA, } g \approx \mathrm{id}),"
        r"\qquad \nabla_x\, \mathbb{E}_t\, f(t(x)) = \mathbb{E}_t\, \nabla_x f(t(x)) \quad (\text{EOT})",
        (
            Step(
                "Plain PGD on the MNIST model behind JPEG",
                "attack",
                _lab("mnist_small_cnn+jpeg75", MNIST_7, "pgd", eps="0.2", steps="40", bpda="0"),
                ("mnist_small_cnn+jpeg75", "After the defense", "0.2"),
            ),
            Step(
                "The same attack with BPDA",
                "attack",
                _lab("mnist_small_cnn+jpeg75", MNIST_7, "pgd", eps="0.2", steps="40", bpda="1"),
                ("mnist_small_cnn+jpeg75", "After the defense", "0.2"),
            ),
        ),
        "With plain PGD the attack fails (**Success: no**) and the defense looks perfect. With `bpda` ticked the "
        "same budget succeeds. The Evaluate page's checklist flags the plain evaluation: zero gradients, "
        "black-box stronger than white-box.",
        "The defended model reports 100% robust accuracy under plain PGD. What is the first check that should "
        "make you doubt it?",
        "That a black-box attack (Square) or a transfer attack does better than the white-box attack, or that "
        "the input gradients are zero: a white-box attack with a correct gradient can never be weaker than a "
        "black-box one. Both are in the gradient-masking checklist.",
    ),
    Lesson(
        "certified-radius",
        "A certified radius: randomized smoothing",
        "See a guarantee instead of an attack: the L2 radius within which no perturbation can change a "
        "smoothed classifier's prediction (Cohen et al. 2019).",
        "The smoothed classifier predicts the class the base model returns most often under Gaussian noise of "
        "size sigma. If that class wins with probability at least p_A (a lower confidence bound from n noisy "
        "samples), no L2 perturbation smaller than R changes the prediction.",
        r"g(x) = \arg\max_c\ \mathbb{P}_{\eta \sim \mathcal{N}(0, \sigma^2 I)}\big[f(x + \eta) = c\big], \qquad "
        r"R = \sigma\,\Phi^{-1}(\underline{p_A})",
        (
            Step(
                "Certify an MNIST digit at sigma 0.25",
                "attack",
                {
                    **_lab("mnist_small_cnn", MNIST_7, "pgd_l2", eps="1.0"),
                    "atk_cert_sigma": "0.25",
                    "atk_cert_n": "2000",
                },
                ("mnist_small_cnn", "PGD (L2)", "0.25"),
            ),
        ),
        "Press **Certify this image** under *Certified radius*: the radius, p_A and the counts. The L2 PGD attack "
        "above runs on the base model, not the smoothed one: compare its L2 norm with the certified radius. "
        "Raise sigma to 0.5 and certify again.",
        "Why does a larger sigma give larger radii on some images and abstentions on others?",
        "R grows with sigma, but more noise also makes the base model less sure: p_A drops, and when it falls "
        "below 1/2 the smoothed classifier abstains. A model trained with Gaussian augmentation at that sigma "
        "(objective gaussian_aug) keeps p_A high.",
    ),
    Lesson(
        "deep-defense-margin",
        "Deep Defense: a margin regulariser (seed 003)",
        "Train a model that pushes its decision boundary away from the data, and measure the distance.",
        "Deep Defense (Yan et al. 2018) adds to the loss a term on the relative DeepFool distance ||r(x)|| / ||x|| "
        "of each training image: large distances are rewarded for correct images, and wrong ones are pulled "
        "towards their class. The rho_2 curve measures that distance after each epoch.",
        r"L = \mathrm{CE}(f(x), y) + \lambda\,\frac{1}{n}\sum_i R_i,\qquad "
        r"R_i = \begin{cases}\exp(-c\,\|r(x_i)\|/\|x_i\|) & \text{correct}\\ "
        r"\exp(d\,\|r(x_i)\|/\|x_i\|) & \text{wrong}\end{cases}",
        (
            Step(
                "Fine-tune the digits model with Deep Defense",
                "training",
                {
                    "tr_objective": "deep_defense",
                    "tr_dataset": "digits",
                    "tr_init": "digits_small_cnn",
                    "tr_epochs": "3",
                },
                ("Deep Defense", "digits_small_cnn", "3"),
            ),
        ),
        "Press **Start** and watch the live curves: the rho_2 curve (the mean relative DeepFool distance) rises "
        "over the epochs while clean accuracy stays high. Then attack the finished run in the Attack Lab (it "
        "appears as `run-<id>-deep_defense`).",
        "Does a larger DeepFool distance mean the model is robust to L-inf attacks?",
        "Not necessarily. DeepFool measures an L2 distance to a linearised boundary, and the regulariser "
        "optimises exactly that estimate. Check with a strong L-inf attack (the standard suite on the Evaluate "
        "page) before claiming robustness.",
    ),
    # ----- issue 28: universal perturbations, patches, a label-only attack ------------------------------------
    Lesson(
        "universal-perturbation",
        "One perturbation for every image: a universal adversarial perturbation",
        "See a single, image-independent perturbation fool a model on most digits it has never seen "
        "(Moosavi-Dezfooli et al. 2017).",
        "A per-image attack tailors its perturbation to one image. A universal perturbation is trained once, on "
        "a set of images, and then added unchanged to any image. The shipped one was trained on the 1,437 "
        "training digits with stochastic gradient steps on the whole batch (Shafahi et al. 2020's faster "
        "variant) and measured on the 360 test digits, which it never saw.",
        r"\delta \leftarrow \Pi_{\|\delta\|_\infty \le \epsilon}\Big(\delta + \alpha\,\mathrm{sign}\,"
        r"\nabla_\delta \tfrac{1}{B}\textstyle\sum_{i} \min\big(\kappa, -m(f(x_i + \delta), y_i)\big)\Big)",
        (
            Step(
                "The universal perturbation (eps 0.2) on test digit #0, a 7",
                "attack",
                {**_digit(0), "attack": "pgd", "eps": "0.2", "auto": "0", "pert": "digits-universal-0.2"},
                ("digits-universal-0.2", "fooling rate on held-out images", "digits_small_cnn"),
            ),
            Step(
                "The same perturbation on test digit #8, a 9",
                "attack",
                {**_digit(8), "attack": "pgd", "eps": "0.2", "auto": "0", "pert": "digits-universal-0.2"},
                ("digits-universal-0.2", "Prediction with it"),
            ),
            Step(
                "A per-image PGD attack at the same eps on digit #8",
                "attack",
                {**_digit(8), "attack": "pgd", "eps": "0.2", "steps": "20"},
                ("digits_small_cnn", "PGD (L-inf)", "0.2"),
            ),
        ),
        "Scroll to *Universal perturbations and patches*: the middle picture is the perturbation itself, the same "
        "for every image. Read the fooling rate on the held-out test digits, with its interval and n: the 7 "
        "becomes a 9. The second link adds the same perturbation to a 9: nothing happens. On the 360 test digits, "
        "210 of the 253 fooled ones become 9s (a dominant label, as Moosavi-Dezfooli et al. observed), so the "
        "9s are exactly the digits it cannot fool. The third link runs PGD on that 9 alone at the same budget: "
        "a perturbation made for the image succeeds where the universal one failed.",
        "Per-image PGD fools every digit at eps 0.2, the universal perturbation about 70% of them. Why would an "
        "attacker still want the universal one?",
        "It costs nothing at attack time: no gradient, no query, no access to the model when it is used, and it "
        "can be printed or broadcast once for all inputs. Its existence also says something about the model: a "
        "few directions in input space carry most of its decisions (Moosavi-Dezfooli et al. relate this to the "
        "curvature of the decision boundary).",
    ),
    Lesson(
        "adversarial-patch",
        "A sticker that turns anything into a bird: an adversarial patch",
        "See a small patch, trained to work wherever it lands, make a CIFAR-10 model predict one chosen class "
        "(Brown et al. 2017).",
        "Instead of a faint change to every pixel, a patch replaces a small region completely (here at most 10% "
        "of the image), so it needs no budget on its pixel values and could be printed. It is trained with "
        "expectation over transformation: at each step it lands at a random position, scale and rotation on "
        "training images, so it keeps working wherever it is put. The target here is *bird*: an untargeted patch "
        "trained first sent 83% of the images it fooled to bird, the class this model is easiest to pull toward.",
        r"p^\star = \arg\max_p\ \mathbb{E}_{x \sim X,\ (\ell, s, r) \sim T}\ "
        r"\log P\big(t \mid A(p, x, \ell, s, r)\big)",
        (
            Step(
                "The bird patch on a dog",
                "attack",
                {**_lab("cifar10_resnet20", CIFAR_DOG, "pgd"), "auto": "0", "pert": "cifar10-bird-patch"},
                ("cifar10-bird-patch", "targeted success on held-out images", "Target reached"),
            ),
            Step(
                "The same patch on a horse, turned by 15 degrees in a corner",
                "attack",
                {
                    **_lab("cifar10_resnet20", CIFAR_HORSE, "pgd"),
                    "auto": "0",
                    "pert": "cifar10-bird-patch",
                    "pert_row": "0",
                    "pert_col": "0",
                    "pert_angle": "15",
                },
                ("cifar10-bird-patch", "Target reached"),
            ),
            Step(
                "The patch against the adversarially trained model",
                "attack",
                {**_lab("cifar10_resnet20_fast_at", CIFAR_DOG, "pgd"), "auto": "0", "pert": "cifar10-bird-patch"},
                ("cifar10-bird-patch", "was made for cifar10_resnet20"),
            ),
        ),
        "Under *Universal perturbations and patches*, read the targeted success on the 100 held-out CIFAR-10 "
        "samples (90 counted: the 10 birds are left out; one random placement each): this dog becomes a bird. Move the patch with the "
        "sliders (row, column, scale, rotation): it works on about half of the held-out images, at many "
        "placements, and on some (the cat of other lessons) at none. The "
        "third link applies it to the Fast-AT model it was not trained for (a transfer).",
        "The patch covers 10% of the image and changes those pixels completely, far beyond an 8/255 budget. "
        "Does adversarial training against 8/255 perturbations protect against it?",
        "Not by design: the threat model is different (unbounded change of few pixels instead of a small change "
        "of all pixels). Any protection seen on the robust model is a side effect; a patch trained on that model "
        "itself is the fair test. Defenses against patches (certified ones bound the patch's area) are their own "
        "field.",
    ),
    Lesson(
        "label-only",
        "Only the label: a decision-based attack (HopSkipJump)",
        "See a model fooled by an attacker who sees nothing but its top-1 label: no gradient, no probabilities "
        "(Chen, Jordan and Wainwright 2020).",
        "HopSkipJump starts from an image that is already misclassified, walks to the decision boundary by "
        "binary search, estimates the boundary's normal from the labels of random probes around that point, "
        "and steps along it, shrinking the distance to the original image at every iteration. Each label is one "
        "query; the distance falls as the queries add up.",
        r"\widehat{\nabla S}(x_b) = \frac{1}{B}\sum_{b=1}^{B} \phi(x_b + \delta u_b)\,u_b, \qquad "
        r"\phi = \begin{cases} +1 & \text{adversarial} \\ -1 & \text{not} \end{cases}",
        (
            Step(
                "HopSkipJump on a CIFAR-10 cat",
                "attack",
                {**_lab("cifar10_resnet20", CIFAR_CAT, "hopskipjump", steps="20", max_evals="1000"), "auto": "0"},
                ("cifar10_resnet20", "HopSkipJump (L2, label-only)", "1000"),
            ),
            Step(
                "Square (L2), which sees the scores, on the same cat",
                "attack",
                {**_lab("cifar10_resnet20", CIFAR_CAT, "square_l2", eps="0.5"), "auto": "0"},
                ("cifar10_resnet20", "Square (L2, black-box)", "0.5"),
            ),
            Step(
                "White-box PGD (L2) on the same cat",
                "attack",
                _lab("cifar10_resnet20", CIFAR_CAT, "pgd_l2", eps="0.5"),
                ("cifar10_resnet20", "PGD (L2)", "0.5"),
            ),
        ),
        "Press **Run attack** (the link uses the CPU preset: 20 iterations, at most 1,000 queries per gradient "
        "estimate) and watch the *Perturbation size* chart fall with the model calls: on this cat it ends near "
        "an L2 distance of 0.56, from labels alone, in about ten seconds. Then run Square at L2 0.5 (it reads the "
        "probabilities; with its default queries it may not get through) and PGD at 0.5 (it reads the gradients "
        "and succeeds in a fraction of a second, with 10 model calls): the more an attacker sees, the fewer "
        "calls it needs.",
        "A defense hides the probabilities and returns only the label. Is the model then safe from black-box attacks?",
        "No. Decision-based attacks like HopSkipJump need only the label; hiding scores raises the number of "
        "queries, not the difficulty in principle. A defense has to change the decision boundary itself, not "
        "what the API reveals.",
    ),
)


PERCEPTUAL = Lesson(
    "perceptually-aligned-gradients",
    "Robust models have perceptually aligned gradients",
    "See that the input gradient of an adversarially trained network looks like the object, while a standard "
    "network's looks like noise (Tsipras et al. 2019; Santurkar et al. 2019), on two RobustBench WideResNet-28-10s.",
    "The saliency map is the gradient of the class score with respect to the pixels: which pixel changes move "
    "the score. A standard network's score can be moved by tiny, scattered changes (that is why 8/255 attacks "
    "work), so its gradient is high-frequency noise. Adversarial training flattens the loss in every direction "
    "of the eps-ball, so the directions left that change the score are the ones that change the image in a "
    "visible way: edges and shapes of the object. Grad-CAM, which pools gradients over a late layer, shows "
    "less of a difference: both models look roughly at the object. The two models here are RobustBench's "
    "Standard (clean 94.78%, AutoAttack 0%) and Carmon et al. 2019 (clean 89.69%, AutoAttack 59.53% at 8/255), "
    "the same architecture.",
    r"S(x)_{ij} = \max_c \Big|\frac{\partial f_y(x)}{\partial x_{c,ij}}\Big|, \qquad "
    r"\min_\theta\ \mathbb{E}_{(x,y)}\ \max_{\|\delta\|_\infty \le \epsilon} L\big(f_\theta(x+\delta), y\big)",
    (
        Step(
            "Saliency of the standard WideResNet on a cat",
            "attention",
            _lens(RB_STANDARD, CIFAR_CAT, "saliency"),
            (RB_STANDARD,),
        ),
        Step(
            "Saliency of the robust WideResNet on the same cat",
            "attention",
            _lens(RB_ROBUST, CIFAR_CAT, "saliency"),
            (RB_ROBUST,),
        ),
        Step(
            "Grad-CAM of the standard WideResNet", "attention", _lens(RB_STANDARD, CIFAR_CAT, "gradcam"), (RB_STANDARD,)
        ),
        Step("Grad-CAM of the robust WideResNet", "attention", _lens(RB_ROBUST, CIFAR_CAT, "gradcam"), (RB_ROBUST,)),
        Step(
            "Without the downloads: saliency of the shipped standard ResNet-20",
            "attention",
            _lens("cifar10_resnet20", CIFAR_CAT, "saliency"),
            ("cifar10_resnet20", "Saliency"),
        ),
        Step(
            "... and of the shipped Fast-AT ResNet-20 (adversarially trained at 8/255)",
            "attention",
            _lens("cifar10_resnet20_fast_at", CIFAR_CAT, "saliency"),
            ("cifar10_resnet20_fast_at", "Saliency"),
        ),
    ),
    "Compare the **clean** saliency maps of links 1 and 2: the standard model's is speckle spread over the "
    "image, the robust model's traces the cat's outline and face. Links 3 and 4 show Grad-CAM: both maps sit "
    "on the cat, so Grad-CAM alone would not tell the models apart. The two WideResNets are RobustBench "
    "downloads (146 and 153 MB): if they are not in the cache, each link opens the page with a download button "
    "(or, with no network, the `python -m advlens fetch-model NAME --from FILE` command for a file obtained "
    "elsewhere); the last two links show the same effect, weaker, on the small models shipped with advlens.",
    "A saliency map that looks like the object is often taken as evidence that a model 'understands' the "
    "image. What does this lesson say about that reading?",
    "The look of a gradient map says more about the model's robustness than about its reasoning: two models "
    "that both classify the cat correctly give very different saliency maps, and the clean, object-shaped one "
    "comes from robustness to small perturbations (the gradient cannot point in imperceptible directions any "
    "more). Grad-CAM, coarser and pooled, hides the difference. Conversely, adversarial examples of a robust "
    "model start to look like the target class, because its gradients are perceptually aligned.",
    needs=(RB_STANDARD, RB_ROBUST),
)
LESSONS = (*LESSONS, PERCEPTUAL)


def lesson_by_slug(slug: str) -> Lesson | None:
    return next((lesson for lesson in LESSONS if lesson.slug == slug), None)
