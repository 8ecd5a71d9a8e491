"""Voice cloning: the learned maps from a speaker to a voice (instant), the optimisers that fit a voice
further (``adapt/``) and the harness that judges clones (``evaluation``). Nothing here touches the database
or the consent flow: enrollment and the adaptation job call in."""
