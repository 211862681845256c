"""Checking axis arguments, the way every op wants them: in range, negative counted from the end."""
import operator


def normalize_axis(axis, ndim: int, op: str) -> int:
    """-1 -> ndim − 1; an axis outside [−ndim, ndim) is refused with the op's name."""
    axis = operator.index(axis)   # accepts NumPy integers, refuses floats
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor with {ndim} dimension(s)")
    return axis % ndim


def normalize_axes(axis, ndim: int, op: str) -> tuple:
    """None -> every axis; an int or a sequence of ints -> sorted, non-negative, without repeats."""
    if axis is None:
        return tuple(range(ndim))
    axes = [axis] if isinstance(axis, int) or hasattr(axis, "__index__") else list(axis)
    normalized = sorted(normalize_axis(a, ndim, op) for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{op}: axis {axis} repeats an axis")
    return tuple(normalized)
