"""Speech synthesis: the request pipeline and its streaming form."""

from voxvault.synthesis.pipeline import PreparedSpeech, RenderedSpeech, SpeechPipeline, VoiceStyle

__all__ = ["PreparedSpeech", "RenderedSpeech", "SpeechPipeline", "VoiceStyle"]
