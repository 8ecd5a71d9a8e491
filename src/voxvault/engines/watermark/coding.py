"""Channel coding for the watermark payload: CRC-24 for error detection, a keyed scrambler, and a
rate-1/2 constraint-length-7 convolutional code decoded with soft-decision Viterbi.

The CRC is what makes a false detection improbable: a decode of unmarked audio passes it with probability
2^-24 per attempt. The scrambler keeps structured inputs (silence decodes to all zeros) away from valid
codewords. The convolutional code is the classic (171, 133) NASA code, chosen for good soft-decision gain
at short block lengths and a decoder that vectorises well in numpy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

PAYLOAD_BITS = 32
CRC_BITS = 24
MESSAGE_BITS = PAYLOAD_BITS + CRC_BITS
CONSTRAINT = 7
TAIL_BITS = CONSTRAINT - 1
CODED_BITS = 2 * (MESSAGE_BITS + TAIL_BITS)
_GENERATORS = (0o171, 0o133)
_CRC_POLY = 0x864CFB  # CRC-24/OpenPGP
_CRC_INIT = 0xB704CE

Bits = NDArray[np.uint8]


def crc24(bits: Bits) -> int:
    """CRC-24 (OpenPGP polynomial and init) over a bit sequence, most significant bit first."""
    reg = _CRC_INIT
    for bit in bits:
        top = ((reg >> 23) & 1) ^ int(bit)
        reg = (reg << 1) & 0xFFFFFF
        if top:
            reg ^= _CRC_POLY
    return reg


def int_to_bits(value: int, width: int) -> Bits:
    return np.array([(value >> (width - 1 - i)) & 1 for i in range(width)], dtype=np.uint8)


def bits_to_int(bits: Bits) -> int:
    out = 0
    for b in bits:
        out = (out << 1) | int(b)
    return out


def message_bits(payload: int, scrambler: Bits) -> Bits:
    """Payload + CRC, XORed with the keyed scrambler."""
    if not 0 <= payload < 1 << PAYLOAD_BITS:
        raise ValueError(f"payload must fit in {PAYLOAD_BITS} bits")
    data = int_to_bits(payload, PAYLOAD_BITS)
    msg = np.concatenate([data, int_to_bits(crc24(data), CRC_BITS)])
    return msg ^ scrambler


def check_message(bits: Bits, scrambler: Bits) -> int | None:
    """The payload if the descrambled CRC matches, else None."""
    msg = bits ^ scrambler
    data, crc = msg[:PAYLOAD_BITS], msg[PAYLOAD_BITS:]
    return bits_to_int(data) if crc24(data) == bits_to_int(crc) else None


def _parity(x: NDArray[np.int64]) -> NDArray[np.int64]:
    x = x.copy()
    out = np.zeros_like(x)
    while np.any(x):
        out ^= x & 1
        x >>= 1
    return out


# Trellis tables: state = last 6 input bits (newest in the high bit), 64 states.
_STATES = 1 << (CONSTRAINT - 1)
_reg = np.arange(2 * _STATES, dtype=np.int64)  # (input bit << 6) | state
_OUT = np.stack([_parity(_reg & g) for g in _GENERATORS], axis=1).astype(np.int8)  # (128, 2)
_NEXT = (_reg >> 1).astype(np.int64)  # next state after shifting the input in at the top


def conv_encode(bits: Bits) -> Bits:
    """Rate-1/2 encoding, terminated with zero tail bits so the decoder ends in state 0."""
    state = 0
    out = np.empty(2 * (len(bits) + TAIL_BITS), dtype=np.uint8)
    for i, b in enumerate(np.concatenate([bits, np.zeros(TAIL_BITS, np.uint8)])):
        reg = (int(b) << (CONSTRAINT - 1)) | state
        out[2 * i : 2 * i + 2] = _OUT[reg]
        state = int(_NEXT[reg])
    return out


# For Viterbi: predecessors of each next state. next = (b<<6 | s) >> 1, so s = ((next << 1) & 63) | lsb.
_NS = np.arange(_STATES)
_PRED = np.stack([((_NS << 1) & (_STATES - 1)) | lsb for lsb in (0, 1)], axis=1)  # (64, 2)
_PRED_REG = ((_NS >> (CONSTRAINT - 2))[:, None] << (CONSTRAINT - 1)) | _PRED  # register value of branch
_PRED_INPUT = (_NS >> (CONSTRAINT - 2)).astype(np.uint8)  # input bit that leads into each next state
_SIGNS = (1 - 2 * _OUT[_PRED_REG]).astype(np.float64)  # (64, 2 branches, 2 outputs): +1 for bit 0


def viterbi_decode(soft: NDArray[np.float64], n_bits: int) -> Bits:
    """Maximum-likelihood message from soft values (positive means coded bit 0), terminated trellis."""
    steps = n_bits + TAIL_BITS
    pairs = soft[: 2 * steps].reshape(steps, 2)
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    choice = np.empty((steps, _STATES), dtype=np.uint8)
    for t in range(steps):
        branch = _SIGNS @ pairs[t]  # (64, 2)
        cand = metric[_PRED] + branch
        pick = np.argmax(cand, axis=1)
        choice[t] = pick
        metric = cand[_NS, pick]
    state = 0
    out = np.empty(steps, dtype=np.uint8)
    for t in range(steps - 1, -1, -1):
        out[t] = _PRED_INPUT[state]
        state = int(_PRED[state, choice[t, state]])
    return out[:n_bits]


def list_viterbi_decode(soft: NDArray[np.float64], n_bits: int, list_size: int) -> list[Bits]:
    """The ``list_size`` most likely messages, best first (parallel list Viterbi, terminated trellis).

    With a CRC on the message, trying the list in order recovers blocks whose best path is wrong in a few
    bits; each entry checked costs one CRC trial in the false-alarm budget.
    """
    steps = n_bits + TAIL_BITS
    pairs = soft[: 2 * steps].reshape(steps, 2)
    n = list_size
    metric = np.full((_STATES, n), -np.inf)
    metric[0, 0] = 0.0
    # back[t, state, rank] = index into the (2 predecessors x n ranks) candidates
    back = np.empty((steps, _STATES, n), dtype=np.int16)
    for t in range(steps):
        branch = _SIGNS @ pairs[t]  # (64, 2)
        cand = (metric[_PRED] + branch[:, :, None]).reshape(_STATES, 2 * n)  # (64, 2n)
        order = np.argsort(-cand, axis=1, kind="stable")[:, :n]
        back[t] = order
        metric = np.take_along_axis(cand, order, axis=1)
    out: list[Bits] = []
    for rank in range(n):
        if not np.isfinite(metric[0, rank]):
            break
        state, r = 0, rank
        bits = np.empty(steps, dtype=np.uint8)
        for t in range(steps - 1, -1, -1):
            c = int(back[t, state, r])
            branch_idx, r = divmod(c, n)
            bits[t] = _PRED_INPUT[state]
            state = int(_PRED[state, branch_idx])
        out.append(bits[:n_bits])
    return out
