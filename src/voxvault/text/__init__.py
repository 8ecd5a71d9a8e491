"""Text front end: normalisation, SSML, lexicon and espeak phonemes -> pieces Kokoro can speak."""

from voxvault.text.frontend import Piece, TextFrontend
from voxvault.text.normalize import normalize_text
from voxvault.text.phonemes import Phonemizer

__all__ = ["Phonemizer", "Piece", "TextFrontend", "normalize_text"]
