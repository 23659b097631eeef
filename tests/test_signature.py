"""Signatures: layout, constructors, validation, serialisation."""

import pytest
from hypothesis import given, settings

import optinv.testing as ot
from optinv.algebra.errors import OptinvError
from optinv.algebra.signature import Signature, TensorSpec, default_name
from budget import scaled


def test_l_max_shorthand_names_and_layout():
    sig = Signature.from_l_max(5)
    assert sig.names == ["s", "v", "q", "t", "l4", "l5"]
    assert [t.rank for t in sig.tensors] == list(range(6))
    assert sig.dim == sum(2 * l + 1 for l in range(6)) == 36
    assert sig.group == "O3"
    # hippynn's names are aliases of the shorthand names
    assert sig.index("zero") == sig.index("s") == 0
    assert sig.index("three") == sig.index("t") == 3
    assert [default_name(l) for l in range(6)] == sig.names


def test_parse_explicit_tensors_and_axial():
    sig = Signature.parse("a:1, b:1 ,q:2,w:1:axial", group="so(3)")
    assert sig.names == ["a", "b", "q", "w"]
    assert sig.group == "SO3"
    assert sig.dim == 3 + 3 + 5 + 3
    assert sig.tensor("a").parity == -1 and not sig.tensor("a").axial
    assert sig.tensor("w").parity == 1 and sig.tensor("w").axial
    assert sig.offsets() == [0, 3, 6, 11]
    assert sig.allows_epsilon


def test_channels():
    sig = Signature.channels({0: 3, 1: 3, 2: 3})
    assert sig.names == ["s0", "s1", "s2", "v0", "v1", "v2", "q0", "q1", "q2"]
    assert sig.dim == 27


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda: Signature.parse("a:-1"), "rank"),
        (lambda: Signature.parse("a:x"), "integer"),
        (lambda: Signature.parse("a"), "name:rank"),
        (lambda: Signature.parse("a:1,a:2"), "unique"),
        (lambda: Signature.parse("eps:1"), "reserved"),
        (lambda: Signature.parse("1a:1"), "identifier"),
        (lambda: Signature.parse("a:1:weird"), "axial"),
        (lambda: Signature.parse(""), "tensors"),
        (lambda: Signature.parse("a:1", group="O2"), "group"),
        (lambda: Signature.from_l_max(-1), "l_max"),
        (lambda: Signature.from_l_max(True), "l_max"),
        (lambda: Signature.from_l_max(99), "l_max"),
        (lambda: TensorSpec("a", 2, parity=3), "parity"),
        (lambda: Signature(()), "at least one"),
        (lambda: Signature((TensorSpec("a", 1),), convention="e3nn"), "convention"),
    ],
)
def test_bad_signatures_are_refused_with_a_clear_message(make, needle):
    with pytest.raises(OptinvError, match=needle):
        make()


def test_unknown_tensor_name_lists_the_known_ones():
    with pytest.raises(OptinvError, match=r"unknown tensor name 'x'.*a, b"):
        Signature.parse("a:1,b:2").index("x")


@settings(max_examples=scaled(40))
@given(sig=ot.signatures(max_tensors=6, max_rank=8, axial=True))
def test_layout_partitions_the_row(sig):
    """Slices are contiguous, in signature order, 2l+1 wide, and cover 0..D-1 once."""
    covered = []
    for spec, sl in zip(sig.tensors, sig.slices().values()):
        assert sl.stop - sl.start == 2 * spec.rank + 1 == spec.size
        covered.extend(range(sl.start, sl.stop))
    assert covered == list(range(sig.dim))
    assert sig.dim == sum(2 * t.rank + 1 for t in sig.tensors)
    for i, name in enumerate(sig.names):
        assert sig.index(name) == i
    assert sig.allows_epsilon == (sig.group == "SO3" or any(t.axial for t in sig.tensors))


@settings(max_examples=scaled(40))
@given(sig=ot.signatures(max_tensors=5, max_rank=8, axial=True))
def test_dict_and_text_round_trips(sig):
    assert Signature.from_dict(sig.to_dict()) == sig
    text, _, group = sig.describe().partition(" [")
    assert Signature.parse(text, group=group.split(",")[0]) == sig
