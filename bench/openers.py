"""Opening sentences of voice-agent turns: 1-20 words before the first comma (issue 28's benchmark set).

Shared by ``bench/first_audio.py`` (time to first audio per opening length) and ``bench/seam.py`` (is a
split first clause heard).
"""

from __future__ import annotations

OPENERS = [
    "Okay.",
    "Sure, I can help with that right away.",
    "Hello, thanks for calling the support line.",
    "Got it, your order number is noted.",
    "Thanks for waiting, I have your account open now.",
    "Good morning and welcome back, how can I help today?",
    "I understand how frustrating that is, let me look into it.",
    "Your package left our warehouse this morning, it should arrive tomorrow.",
    "Let me check the latest schedule for you, one moment please.",
    "Thanks for calling the clinic, your appointment is confirmed for Tuesday.",
    "I can see that your last payment went through on Monday, so you are all set.",
    "The next train to the airport leaves from platform two at a quarter past four, and it is on time.",
    "I have looked through all of the recent transactions on your checking account, and found the duplicate.",
    "Before we change anything on your plan I need to confirm a few details with you, is that alright?",
    "Your appointment with Doctor Patel has been moved to Thursday afternoon at three, does that still work?",
    "We received your request to update the delivery address on the order you placed last week, it is done.",
    "According to our records the warranty on your washing machine is still valid until the end of next "
    "year, so the repair is free.",
    "If you want the same seat on the return flight I can hold it for you until tonight, just let me know.",
    "The technician who visited you yesterday reported that the router must be replaced before the line "
    "works again, I will send one.",
    "Since your subscription renews automatically on the first of every month you will see the charge on "
    "your statement, nothing to do.",
    "Yes, that works.",
    "Absolutely, I will send it now.",
    "No problem at all, it is already cancelled.",
    "One moment please, I am pulling up your file.",
    "I am sorry about the delay with your refund, it was processed this morning.",
    "Your balance after this payment will be forty two dollars and fifty cents, anything else?",
    "The pharmacy on Main Street closes at nine tonight but the one on Elm Street is open all night, "
    "would that help?",
    "To reset your password open the settings page and choose security then follow the link we email you, "
    "it takes a minute.",
    "Great news, your loan application has been approved.",
    "I checked with the kitchen and the gluten free pasta can be made without any cross contamination, "
    "shall I add it to your order?",
]


def words_before_comma(text: str) -> int:
    """Words in the opening clause: up to the first comma, or the whole sentence when there is none."""
    return len(text.split(",", 1)[0].split())


def bucket(text: str) -> str:
    """Length bucket of an opening clause, for the benchmark's per-length percentiles."""
    n = words_before_comma(text)
    if n <= 2:
        return "1-2"
    if n <= 5:
        return "3-5"
    if n <= 10:
        return "6-10"
    return "11-20"
