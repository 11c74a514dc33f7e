"""Zoo architectures as reference points for a run's Pareto figures, counted at the run's scale: the recipe's
width and depth multipliers, the run's input size, channels and classes (`Recipe.transform`)."""
from __future__ import annotations

from nas.dsl.errors import SpecError, did_you_mean
from nas.reporting.figures.pareto import Reference
from nas.reporting.load import Run


def parse_names(text: str) -> list[str]:
    from nas import zoo

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise SpecError("no architecture named", "--reference", "e.g. --reference mobilenetv2,fbnet_c")
    known = zoo.architectures()
    for name in names:
        if name not in known:
            raise SpecError(f"'{name}' is not a zoo architecture", "--reference",
                            did_you_mean(name, known) or "see `nas zoo`")
    return names


def run_input(run: Run) -> tuple[int | None, int | None, int | None]:
    """(channels, size, classes) of the run's architectures, read from one it wrote."""
    from nas.dsl import load

    found = sorted(run.path.glob("pareto/*.arch.yaml")) + [run.path / "best.arch.yaml"]
    for path in found:
        if path.is_file():
            doc = load(path).doc
            return doc["input"]["channels"], doc["input"]["size"], doc["classes"]
    recipe = run.recipe
    return (recipe.space.channels or recipe.data.channels, recipe.space.size or recipe.data.size,
            recipe.space.classes) if recipe is not None else (None, None, None)


def reference_points(run: Run, names: list[str]) -> list[Reference]:
    from nas import zoo
    from nas.cost import count_arch

    if run.recipe is None:
        raise SpecError("the run's recipe.yaml does not load, so its scale is unknown", str(run.path / "recipe.yaml"),
                        "drop --reference")
    channels, size, classes = run_input(run)
    out = []
    for name in names:
        arch = run.recipe.transform(zoo.load(name), channels, size, classes)
        cost = count_arch(arch).total
        width = run.recipe.space.width
        shape = arch.doc["input"]
        note = ", ".join(x for x in (f"width ×{width:g}" if width is not None else "",
                                     f"{shape['channels']}×{shape['size']}×{shape['size']}") if x)
        out.append(Reference(name, float(cost.flops), float(cost.params), note))
    return out
