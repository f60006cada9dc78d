"""The audit log's Merkle tree: RFC 6962 hashing, proofs checked by RFC 9162's verifiers."""

from __future__ import annotations

import hashlib

import pytest

from governance.domain import merkle

# Certificate Transparency's own test vectors (merkle_tree_test.cc): leaves and the root
# of the tree of the first n of them.
CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
             "606162636465666768696a6b6c6d6e6f"]  # fmt: skip
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATH_0_OF_8 = [
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
]


def ct_leaves() -> list[bytes]:
    return [merkle.leaf_hash(bytes.fromhex(leaf)) for leaf in CT_LEAVES]


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"event {i}".encode()) for i in range(n)]


def reference_root(hashes: list[bytes]) -> bytes:
    """MTH exactly as RFC 6962 §2.1 defines it, recursively: the oracle for `root`."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return merkle.node_hash(reference_root(hashes[:k]), reference_root(hashes[k:]))


def test_empty_tree_root() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("n", range(1, 9))
def test_roots_equal_certificate_transparency_vectors(n: int) -> None:
    assert merkle.root(ct_leaves()[:n]).hex() == CT_ROOTS[n - 1]


def test_inclusion_path_equals_certificate_transparency_vector() -> None:
    assert [p.hex() for p in merkle.inclusion_proof(0, ct_leaves())] == CT_PATH_0_OF_8


@pytest.mark.parametrize("n", range(1, 70))
def test_root_equals_the_recursive_definition(n: int) -> None:
    assert merkle.root(leaves(n)) == reference_root(leaves(n))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 16, 17, 33])
def test_every_inclusion_proof_verifies_and_tampering_fails(n: int) -> None:
    tree = leaves(n)
    head = merkle.root(tree)
    for index, leaf in enumerate(tree):
        proof = merkle.inclusion_proof(index, tree)
        assert merkle.verify_inclusion(leaf, index, n, proof, head)
        assert not merkle.verify_inclusion(merkle.leaf_hash(b"forged"), index, n, proof, head)
        if n > 1:
            assert not merkle.verify_inclusion(leaf, (index + 1) % n, n, proof, head)
            broken = [merkle.leaf_hash(b"x"), *proof[1:]]
            assert not merkle.verify_inclusion(leaf, index, n, broken, head)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 13, 16, 21, 32, 33])
def test_every_consistency_proof_verifies_and_a_rewritten_log_fails(n: int) -> None:
    tree = leaves(n)
    new_root = merkle.root(tree)
    for m in range(1, n + 1):
        old_root = merkle.root(tree[:m])
        proof = merkle.consistency_proof(m, tree)
        assert merkle.verify_consistency(m, n, old_root, new_root, proof), (m, n)
        rewritten = [*tree[: m - 1], merkle.leaf_hash(b"rewritten"), *tree[m:]]
        assert not merkle.verify_consistency(
            m, n, old_root, merkle.root(rewritten), merkle.consistency_proof(m, rewritten)
        ), (m, n)
        if m < n:
            assert not merkle.verify_consistency(m, n, old_root, new_root, [])
            assert not merkle.verify_consistency(m, n, merkle.leaf_hash(b"x"), new_root, proof)


def test_bad_proof_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree of 3"):
        merkle.inclusion_proof(3, leaves(3))
    with pytest.raises(ValueError, match="from size 0"):
        merkle.consistency_proof(0, leaves(3))
