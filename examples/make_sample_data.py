"""Generate the bundled customer-support sample dataset.

Writes the same conversations in two formats, in the same order:

* ``examples/data/customer-support/chat/conversations.jsonl`` -- one
  ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}`` object per line.
* ``examples/data/customer-support/csv/conversations.csv`` -- columns ``instruction,output``.

Each conversation is composed from hand-written templates for a fictional online
electronics and home-goods store, "Quillfeather Home & Tech": twelve topics, several
scenarios per topic, four customer tones, and random slot values (order numbers,
products, dates, amounts, promo codes). About 15% of the answers are deliberately
long (100-220 words) so the length distribution is long-tailed.

The output is deterministic: a single ``random.Random(SEED)`` drives every choice,
only ordered containers (lists, insertion-ordered dicts) are iterated, and the bytes
are written with explicit UTF-8 and ``\\n`` line endings. Re-running the script
therefore reproduces byte-identical files, and ``--check`` verifies that the files
on disk are up to date (exit status 1 if they are missing or differ).

Usage (from the repository root):
    python examples/make_sample_data.py           # (re)write the files
    python examples/make_sample_data.py --check   # verify, write nothing
"""

import argparse
import csv
import io
import json
import random
import sys
from pathlib import Path

SEED = 20240611
N_CONVERSATIONS = 360
LONG_SHARE = 0.15
SHORT_WORDS, LONG_WORDS, USER_WORDS = (15, 60), (100, 220), (5, 80)
OUT_DIR = Path(__file__).resolve().parent / "data" / "customer-support"
JSONL_PATH = OUT_DIR / "chat" / "conversations.jsonl"
CSV_PATH = OUT_DIR / "csv" / "conversations.csv"

# ---------------------------------------------------------------- slot values
PRODUCTS = [
    ("Cadence Pro wireless earbuds", "129.99"),
    ("Nimbus S2 robot vacuum", "349.00"),
    ("Glimmer smart bulb 4-pack", "54.99"),
    ("Ridgeline 27-inch monitor", "279.99"),
    ("Porchlight video doorbell", "149.00"),
    ("Simmer glass kettle", "64.95"),
    ("Stride fitness band", "89.99"),
    ("Alder 300 air purifier", "219.00"),
    ("Wren mini smart speaker", "49.99"),
    ("Hearth ceramic space heater", "79.00"),
    ("Tether USB-C charging dock", "39.99"),
    ("Hush white-noise machine", "59.00"),
]
COLORS = ["graphite", "sage green", "sand", "midnight blue", "arctic white", "terracotta"]
NAMES = [
    "Priya Raman",
    "Marcus Bell",
    "Zoë Laurent",
    "José Ortega",
    "Hannah Cole",
    "Tomasz Nowak",
    "Aiko Tanaka",
    "Chidi Okafor",
    "Sofía Méndez",
    "Liam Byrne",
    "Fatima Haddad",
    "Björn Lindqvist",
    "Grace Mensah",
    "Mateo Rossi",
    "Nadia Petrova",
    "Owen Hughes",
]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November"]
# (code, what it gives, why it was rejected)
CODES = [
    (
        "WELCOME10",
        "10% off a first order with no minimum spend",
        "it only works on an account's first order, and this account has earlier orders",
    ),
    ("SPRING15", "15% off orders of $75 or more", "the cart subtotal was below $75 once the sale prices were applied"),
    (
        "FREESHIP",
        "free standard shipping on any order",
        "express shipping was selected, and the code covers standard shipping only",
    ),
    (
        "HOME20",
        "20% off home goods such as kettles, heaters and purifiers",
        "it excludes items that are already on sale, and everything in the cart was discounted",
    ),
    (
        "BUNDLE25",
        "$25 off when you buy two or more smart-home devices",
        "the cart had only one eligible smart-home device",
    ),
    ("THANKS5", "$5 off a future order, sent after a feedback survey", "it expired 60 days after it was issued"),
]


def make_slots(rng):
    product, price = rng.choice(PRODUCTS)
    code, code_desc, code_reason = rng.choice(CODES)
    return dict(
        product=product,
        price="$" + price,
        code=code,
        code_desc=code_desc,
        code_reason=code_reason,
        color=rng.choice(COLORS),
        name=rng.choice(NAMES),
        order=f"QF-{rng.randrange(10**6, 10**7):07d}",
        tracking=f"QX{rng.randrange(10**10):010d}",
        last4=f"{rng.randrange(10**4):04d}",
        date=f"{rng.choice(MONTHS)} {rng.randint(1, 28)}",
        days=rng.randint(3, 16),
        late_days=rng.randint(35, 75),
        months=rng.randint(2, 11),
        old_months=rng.randint(13, 30),
        years=rng.randint(2, 9),
        since=rng.randint(2015, 2022),
    )


# ---------------------------------------------------------------- tones
PREFIX = {
    "polite": ["Hi there!", "Hello!", "Good morning!", "Hi team!", "Hey, hope you're well."],
    "frustrated": [
        "Honestly, this is getting ridiculous.",
        "I'm really frustrated right now.",
        "This is the second time I'm contacting you about this.",
        "Not happy at all.",
        "I've been waiting long enough.",
    ],
}
SUFFIX = {
    "polite": ["Thanks so much!", "Thank you in advance.", "Appreciate any help.", "Thanks!"],
    "frustrated": [
        "Please sort this out today.",
        "I expect a real answer this time.",
        "Fix it, please.",
        "I'm close to never ordering from you again.",
    ],
    "detailed": ["Let me know if you need anything else from me.", "Thanks for looking into it.", "", ""],
}
CONTEXT = [
    "My name is {name}, and I've been a customer for {years} years.",
    "For context, I've shopped with you since {since} and rarely contact support.",
    "I already read the help center articles but couldn't find a clear answer.",
    "I'm using the mobile app on an older phone, in case that's relevant.",
    "I'd appreciate a written reply I can keep for my records.",
    "This is {name} writing, from the email address on the account.",
]
OPENER = {
    "polite": ["Thanks for reaching out!", "Happy to help with this.", "Thanks for getting in touch."],
    "frustrated": [
        "I'm sorry for the trouble, and I understand the frustration.",
        "I apologize that this has taken more of your time than it should.",
        "I'm sorry this has been such a hassle.",
    ],
    "terse": ["", "", "Sure.", "Got it."],
    "detailed": ["Thanks for the detailed message, that helps a lot.", "Thanks for the background, that's useful."],
}
APOLOGIES = ("Sorry", "I'm sorry", "I'm very sorry", "I'm really sorry", "Thank you for telling us", "You're right")
ACKS = APOLOGIES + ("Yes", "Done", "No", "Absolutely", "Good news", "I've")
CLOSER = [
    "",
    "",
    "",
    "Let me know if there's anything else I can help with.",
    "Is there anything else I can do for you today?",
]


def sc(users, terse, short, long=()):
    """One scenario: full user phrasings, terse phrasings, short answers, long answers."""
    return dict(users=users, terse=terse, short=short, long=list(long))


# ---------------------------------------------------------------- templates
TOPICS = {
    "billing": [
        sc(
            [
                "I was charged twice for order {order}. My statement shows two payments of {price} on the card ending in {last4}.",
                "Why are there two charges of {price} for one order? The order number is {order}.",
                "My banking app lists order {order} twice, {price} each time. Can you refund the extra one?",
            ],
            ["Double charged {price} on {order}.", "two charges on card ending {last4}, order {order}"],
            [
                "I checked order {order}, and it was only captured once. The second {price} entry is a pending authorization from a retried payment; it falls off automatically within 3–5 business days. If it's still there after that, reply here and we'll contact the card issuer.",
                "You're right, order {order} was billed twice because of a payment retry on {date}. I've refunded the duplicate {price} to the card ending in {last4}. Depending on your bank, it should show up within 5–10 business days.",
            ],
            [
                'Here is what happened with order {order} and what to expect next.\n\n1. When you placed the order, our system asked your bank to hold {price} (an authorization). The payment page timed out, so a second authorization was created when you tried again.\n2. Only one of those holds was actually charged. The other is still marked "pending" and has not been taken from your account.\n3. Pending holds are released by the bank, not by us, and usually disappear within 3–5 business days. Some banks take up to 10.\n\nIf the duplicate changes from "pending" to "posted", or is still there after 10 business days, reply with a screenshot of the two entries (you can hide everything except the dates and amounts). We\'ll refund it directly and send a confirmation with a reference number your bank can trace.'
            ],
        ),
        sc(
            [
                "I sent back the {product} on {date}, but the refund of {price} still hasn't shown up.",
                "Where is my refund for order {order}? You received the return {days} days ago.",
                "Could you check the status of my refund? It's for the {product} from order {order}.",
            ],
            ["refund for {order} not received yet", "Still no refund. Order {order}, {price}."],
            [
                "Our warehouse logged your return for order {order}, and the {price} refund went to your original payment method two days ago. Banks usually post refunds within 5–10 business days. If it hasn't appeared by then, send a statement screenshot and we'll trace it.",
                "The {product} from order {order} is still in inspection at our returns center, which can take up to 3 business days after arrival. Once it passes, the {price} refund is issued automatically and you'll get an email confirmation.",
            ],
            [
                "I'm sorry the refund is taking longer than expected. Here is the full timeline for order {order}:\n\n1. Return delivered: the carrier confirmed our warehouse received your {product}.\n2. Inspection: our team checks that all parts and accessories are included. This normally takes 1–3 business days.\n3. Refund issued: {price} goes back to the original payment method. Gift card payments are refunded to a new gift card instantly.\n4. Bank processing: most banks post the credit within 5–10 business days, and it may show as pending first.\n\nYour return passed inspection, and the refund was issued two days ago under reference RF-{last4}. If it still isn't visible by the end of next week, send us a screenshot of your recent transactions and we'll open a payment trace with our processor. Traces usually resolve within 5 business days."
            ],
        ),
        sc(
            [
                "I bought the {product} for {price} on {date}, and now it's on sale for less. Can I get the difference back?",
                "The price of the {product} dropped right after I ordered it ({order}). Do you offer price adjustments?",
            ],
            ["price dropped on the {product}, want the difference", "Price adjustment for {order}, please."],
            [
                "Yes. If an item's price drops within 14 days of purchase, we refund the difference once. I've refunded it for the {product} on order {order}; it should reach your original payment method within 5–10 business days. Flash deals and clearance prices aren't eligible."
            ],
        ),
        sc(
            [
                "I need a proper invoice for order {order} for my company's expense report. Where can I get one?",
                "Can you send an invoice with my company's name on it for the {product}? It was {price}.",
            ],
            ["invoice for {order} please, for expenses", "Need a business invoice for {order}."],
            [
                'You can download it anytime: go to Orders, open {order}, and choose "Download invoice (PDF)". To add a company name or tax ID, update Account > Billing details first; the invoice regenerates automatically.',
                "I've emailed a PDF invoice for order {order} to the address on your account. If you need a company name or tax ID on it, add them under Account > Billing details and download it again from the Orders page.",
            ],
        ),
    ],
    "shipping": [
        sc(
            [
                "My order {order} was supposed to arrive on {date}, and it's still not here. What's going on?",
                "Tracking for {order} hasn't updated in {days} days. Is my package lost?",
                "I ordered the {product} and the delivery estimate has already passed. Where is it?",
            ],
            ["where is order {order}, it's late", "{order} late. Tracking stuck for {days} days."],
            [
                "I'm sorry for the delay. Tracking number {tracking} shows your package at the regional sorting center after a weather backlog, with a new estimate of 2–3 business days. If it doesn't move within 5 business days, we'll reship or refund it at no cost.",
                "Good news: tracking {tracking} shows your package moving again, and it should arrive within 2 business days. Sorry for the wait.",
                "I've opened a trace with the carrier for order {order} (tracking {tracking}). Traces take up to 48 hours. If the package isn't located, we'll send a replacement {product} by express shipping at no charge.",
            ],
            [
                "I'm sorry your order hasn't arrived. Here's where things stand and what we'll do.\n\n1. Status: the last scan for tracking number {tracking} was at the carrier's regional hub. The carrier has confirmed a backlog there, which is why tracking hasn't updated.\n2. Trace: I've opened a formal trace today. The carrier will search the facility and update us within 48 hours.\n3. Your options: if the package is found, it continues to you with priority handling. If it isn't found, or there's no new scan within 5 business days, we'll ship a replacement by express delivery or refund you in full, whichever you prefer.\n\nYou don't need to do anything right now. I'll email you as soon as the carrier responds, and I've refunded the shipping fee on order {order} as an apology for the wait."
            ],
        ),
        sc(
            [
                "Tracking says order {order} was delivered on {date}, but there's nothing at my door.",
                "The app shows my {product} as delivered, but I never got it. I already asked my neighbors.",
            ],
            ["says delivered but not received, {order}", "Package marked delivered, but it's missing."],
            [
                "Sorry about that. Carriers sometimes mark packages delivered up to 24 hours early. If it hasn't turned up by tomorrow evening, reply here and we'll file the claim and ship a replacement {product} right away; you won't have to wait for the claim."
            ],
            [
                "I'm sorry, that's stressful, especially after waiting for the {product}. Please try these steps first, because most \"delivered\" packages turn up within a day:\n\n1. Check around the address: porches, side doors, garages, mailrooms and behind planters.\n2. Look at the delivery photo, if there is one, in the tracking details for {tracking}. It often shows exactly where the driver left the box.\n3. Ask your building manager or neighbors; drivers sometimes leave packages at the wrong unit.\n4. Wait 24 hours. Carriers occasionally scan a package as delivered before the final drop-off.\n\nIf it's still missing after that, reply to this message. We'll file the claim with the carrier ourselves and ship a replacement for order {order} right away, without waiting for the investigation. If the item is out of stock, we'll refund you in full instead."
            ],
        ),
        sc(
            [
                "How much does express shipping cost, and how fast is it?",
                "If I order the {product} today, when would it arrive?",
                "Is standard shipping free, or is there a minimum order amount?",
            ],
            ["What does express shipping cost?", "how fast is standard delivery usually"],
            [
                "Standard shipping takes 3–7 business days and is free on orders over $49 (otherwise $5.99). Express costs $12.99 and arrives in 1–2 business days if you order before 2 p.m. Eastern. Plus members get free express shipping on every order.",
                "Standard shipping is free over $49 and takes 3–7 business days. Express costs $12.99 and takes 1–2 business days.",
            ],
        ),
        sc(
            [
                "Can you ship to a PO box address?",
                "Do you deliver the {product} to PO boxes, or only to street addresses?",
            ],
            ["Do you ship to PO boxes?"],
            [
                "Yes, standard shipping can go to PO boxes and APO/FPO addresses. Express shipping and large items, such as the Nimbus S2 robot vacuum and Alder 300 air purifier, need a street address because the courier requires a signature.",
                "Yes, for standard shipping. Express orders and large items like the Nimbus S2 vacuum need a street address.",
            ],
        ),
    ],
    "returns": [
        sc(
            [
                "I'd like to return the {product} I bought on {date}. How do I do that?",
                "How do I send back the {product} from order {order}? It's still in the box.",
                "The {product} isn't what I expected. Can I return it?",
            ],
            ["How do I return the {product}?", "return {order}, don't need it anymore"],
            [
                'You can return it within 30 days of delivery. Go to Orders, open {order}, select "Return item", and print the prepaid label. For change-of-mind returns, $5.99 is deducted from the refund. Refunds go out within 3–5 business days of the item reaching us.'
            ],
            [
                "Here's how returns work for the {product}:\n\n1. Window: you have 30 days from delivery, or 60 days if you're a Plus member.\n2. Condition: opened items are fine as long as they're undamaged and include all accessories, cables and manuals. Original packaging helps but isn't required.\n3. Start the return: go to Orders, open {order}, select \"Return item\" and choose a reason. You'll get a prepaid label and a QR code for drop-off.\n4. Cost: returns of defective or wrong items are free. For change-of-mind returns, a $5.99 shipping fee is deducted from the refund.\n5. Refund: once the warehouse receives and inspects the item (1–3 business days), we refund your original payment method. Your bank may need 5–10 business days to post it.\n\nOne exception: earbuds and other in-ear products can only be returned with their ear tips included, for hygiene reasons."
            ],
        ),
        sc(
            [
                "Can I exchange my {product} for the {color} version?",
                "I love the {product}, but the color clashes with my living room. Could I swap it for {color}?",
            ],
            ["exchange {product} for {color}, possible?", "Swap to {color} please, order {order}."],
            [
                'Absolutely. Open order {order}, select "Exchange", and choose {color}. We ship the new one as soon as the carrier scans your return, so you won\'t wait for it to reach our warehouse. Color exchanges are free.',
                "I'm sorry, the {product} is sold out in {color} right now. I can set up a free return for a full refund instead, or add you to the restock alert; restocks usually happen within 2–3 weeks.",
            ],
        ),
        sc(
            [
                "I bought the {product} {late_days} days ago and just realized I don't need it. Can I still return it?",
                "Is it too late to return the {product} from order {order}? It's been about {late_days} days.",
            ],
            ["return the {product} after {late_days} days?"],
            [
                "I'm sorry, at {late_days} days the {product} is outside our 30-day return window, so I can't set up a refund. If it develops a fault, it's still covered by the 1-year limited warranty, and our trade-in program offers store credit for it.",
                "The {product} is past the 30-day return window ({late_days} days since delivery), but since it's unused, I've made a one-time exception. Please use the prepaid label I've just emailed within 7 days.",
            ],
        ),
        sc(
            [
                "The {product} arrived damaged. The box was crushed and the item is cracked.",
                "My {product} from order {order} came broken. What can I do?",
                "Opened the {product} today and it's scratched and dented. Not acceptable for {price}.",
            ],
            ["{product} arrived broken, need a replacement", "Damaged item in order {order}."],
            [
                "I'm sorry it arrived damaged. I've shipped a replacement {product} by express at no cost and emailed a prepaid return label for the damaged one. Please send it back within 30 days; you don't need to wait before using the replacement.",
                "Sorry about that. Please reply with two photos, one of the item and one of the shipping box, and I'll send a free replacement or a full {price} refund, whichever you prefer. The photos help us file the claim with the carrier.",
            ],
        ),
    ],
    "account": [
        sc(
            [
                "I requested a password reset three times, but no email ever arrives.",
                "The forgot password link isn't sending me anything. How do I get into my account?",
            ],
            ["password reset email never arrives", "can't log in, no reset email at all"],
            [
                'Reset emails come from "Quillfeather Accounts" and usually arrive within 5 minutes, so please check spam and promotions folders. Each link works for 30 minutes, and only the newest one is valid. If nothing arrives, tell me your sign-up email and I\'ll check it.'
            ],
            [
                "Let's get you back in. Please work through these steps in order:\n\n1. Confirm the address: reset emails only go to the email registered on the account. If you might have signed up with an older address, try that one.\n2. Check every folder: look in spam, junk, promotions and updates. The sender is \"Quillfeather Accounts\".\n3. Use only the newest email: each new request cancels the previous link, and every link expires after 30 minutes.\n4. Open the link in a browser: if you're on the app, copy the link into your phone's browser rather than an in-app viewer.\n5. Clear cached data: if the page says the link is invalid, clear the site's cookies and try again.\n\nIf none of that works, reply with the email address you think the account uses and a recent order number. I can verify you and send a reset link manually, which usually arrives within a few minutes."
            ],
        ),
        sc(
            [
                "My account says it's locked after I typed the wrong password a few times.",
                "It says 'account temporarily locked'. What does that mean, and how do I fix it?",
            ],
            ["account locked, what do I do"],
            [
                'For security, accounts lock for 15 minutes after 5 failed sign-in attempts. After that, sign in again or use "Forgot password" to set a new one. If those attempts weren\'t yours, change your password and turn on two-step verification under Account > Security.',
                'Accounts unlock automatically 15 minutes after 5 failed attempts. Then sign in again, or set a new password with "Forgot password".',
            ],
        ),
        sc(
            [
                "How do I change the email address on my account? I'm switching providers.",
                "I need to update my login email, but I can't find the setting anywhere.",
            ],
            ["how to change account email address"],
            [
                "Go to Account > Profile > Email, enter the new address, and confirm with your password. We send a verification link to the new address and a notice to the old one. The change takes effect once you click the link, which is valid for 24 hours."
            ],
        ),
        sc(
            [
                "I got a new phone and lost access to my two-step verification codes. How do I log in?",
                "My authenticator app was on my old phone, which broke. Now I can't sign in to place an order.",
            ],
            ["lost phone, can't get 2FA code", "Two-factor codes gone after new phone."],
            [
                "You can sign in with one of the 10 backup codes shown when you turned on two-step verification. If you don't have them, reply with your last order number and the last four digits of the card used. Once verified, we'll remove two-step verification within 24 hours."
            ],
        ),
    ],
    "orders": [
        sc(
            [
                "Please cancel order {order}. I ordered the wrong item.",
                "I placed order {order} by mistake earlier today. Can it still be cancelled?",
                "I need to cancel the {product} I ordered on {date}.",
            ],
            ["cancel order {order} please, thanks", "Cancel {order}, ordered by mistake."],
            [
                "Done. Order {order} was still processing, so I've cancelled it. The {price} hold on your card will be released within 3–5 business days, and a cancellation email is on its way.",
                "Done: order {order} is cancelled, and the {price} hold will drop off your card within 3–5 business days.",
                "I'm sorry, order {order} has already shipped, so it can't be cancelled. You can refuse the delivery when it arrives, and we'll refund the full {price} once it's back with us, or return it within 30 days from the Orders page.",
            ],
        ),
        sc(
            [
                "I need to change the shipping address on order {order}. I entered my old address by accident.",
                "Can you send order {order} to my office instead of my home?",
            ],
            ["change address on {order} please", "Wrong address on order {order}, help."],
            [
                "I've updated the shipping address on order {order}; it hadn't been packed yet, so the change went through. You'll receive an updated confirmation email. Please double-check the apartment or suite number in it.",
                "Order {order} is already with the carrier, so we can't edit the address anymore. You can request a redirect on the carrier's tracking page for {tracking}; redirects are free and usually add one business day.",
            ],
        ),
        sc(
            [
                "Can I change the color of the {product} in order {order} to {color}?",
                "I picked the wrong color by mistake. Could order {order} be switched to {color}?",
            ],
            ["switch {order} to {color} please"],
            [
                "Yes, order {order} hasn't been packed yet, so I've switched the {product} to {color}. The price is the same and the delivery estimate hasn't changed. You'll receive an updated confirmation email within a few minutes."
            ],
        ),
        sc(
            [
                "Can I add another item to order {order} before it ships?",
                "I forgot to add a charger to order {order}. Could you add it for me?",
            ],
            ["add an item to order {order}?"],
            [
                "We can't add items to an existing order, but if you place a second order within the next hour, we'll ship both together where possible. If the combined total is over $49, I'll refund any shipping fee charged on the second order."
            ],
        ),
        sc(
            [
                "What can I still change on my order once it's placed? I want to understand before I buy the {product}.",
                "How long do I have to edit or cancel an order after placing it?",
            ],
            ["How long can I edit orders?"],
            [
                'You can edit or cancel an order until it reaches "Preparing for shipment", usually about 1 hour after you place it. After that it\'s locked, but you can still refuse the delivery or return the item within 30 days.'
            ],
            [
                "Here's how order stages work and what you can change at each one:\n\n1. Processing (usually the first hour): you can cancel, change the shipping address, switch colors, update the payment method, or apply a promo code you forgot. Use the Orders page or ask us.\n2. Preparing for shipment: the item is being picked and packed. We can still try to cancel, but it isn't guaranteed, and the address can no longer be changed.\n3. Shipped: the order is with the carrier. You can request a delivery redirect on the carrier's tracking page, or refuse the delivery for a full refund.\n4. Delivered: you have 30 days (60 for Plus members) to return or exchange the item.\n\nIf you're still deciding on the {product}, you can save it to your wishlist, and we'll email you if the price drops."
            ],
        ),
    ],
    "troubleshooting": [
        sc(
            [
                "My Cadence Pro earbuds won't pair with my phone anymore.",
                "Only the left Cadence Pro earbud plays sound; the right one is silent.",
                "The Cadence Pro earbuds I got on {date} keep disconnecting from my laptop every few minutes.",
            ],
            ["Cadence Pro earbuds won't connect", "right earbud not working, Cadence Pro"],
            [
                'A reset fixes most pairing problems. Remove "Cadence Pro" from your device\'s Bluetooth list, put both earbuds in the case, keep the lid open, and hold the case button for 15 seconds until the light flashes amber. Then pair them again as a new device.'
            ],
            [
                "Let's work through this step by step; a full reset solves most pairing and one-side audio issues with the Cadence Pro:\n\n1. Charge: put both earbuds in the case and charge it for at least 20 minutes. A fully drained earbud often won't wake up.\n2. Clean the contacts: wipe the metal charging contacts on the earbuds and inside the case with a dry cotton swab.\n3. Forget the device: remove \"Cadence Pro\" from the Bluetooth list on your phone and on any laptop or tablet it was paired with.\n4. Reset: with both earbuds in the case and the lid open, hold the case button for 15 seconds until the light flashes amber, then white.\n5. Pair again: choose \"Cadence Pro\" in the Bluetooth list and accept both pairing requests if asked.\n6. Update: open the Quillfeather app and install any firmware update.\n\nIf one earbud is still silent after this, it's likely a hardware fault. That's covered by the 1-year warranty, and we can ship a replacement bud before you send the old one back."
            ],
        ),
        sc(
            [
                "My Nimbus S2 robot vacuum won't charge on its dock.",
                "The Nimbus S2 keeps stopping in the middle of the room and never finds its way back to the base.",
            ],
            ["Nimbus S2 vacuum won't charge anymore", "nimbus s2 not docking, battery dead"],
            [
                "Please wipe the two metal charging contacts on the vacuum and the dock with a dry cloth, then place the dock against a wall with 1 meter of clear space on each side. Hold the Home button for 5 seconds to restart. Most docking issues clear up after that."
            ],
            [
                "Docking and charging problems on the Nimbus S2 usually have a simple cause. Please try these steps in order:\n\n1. Clean the contacts: wipe the two metal strips on the dock and the matching contacts under the vacuum with a dry cloth.\n2. Check the dock's position: it should sit flat against a wall, with 1 meter of clear space on each side and 2 meters in front. Mirrors or glossy furniture nearby can confuse the sensors.\n3. Check the power: make sure the dock's light is on. Try a different outlet, and avoid switched outlets or power strips with a timer.\n4. Clean the sensors: wipe the cliff sensors under the bumper and the docking sensor on the front.\n5. Restart: hold the Home button for 5 seconds, then place the vacuum on the dock by hand for 3 hours.\n\nIf it still won't charge, the battery may be worn out. Batteries are covered by the 1-year warranty, and a replacement battery costs $39 after that. Reply with the serial number from the underside and I'll check your options."
            ],
        ),
        sc(
            [
                "I can't get my Glimmer smart bulbs to connect to my Wi-Fi.",
                "The app keeps saying 'device not found' when I try to add my new Glimmer bulb.",
            ],
            ["Glimmer bulbs won't connect to Wi-Fi", "glimmer bulb not found in the app"],
            [
                "Glimmer bulbs only work on 2.4 GHz Wi-Fi, so make sure your phone is on a 2.4 GHz network during setup. To reset a bulb, switch it off and on 5 times until it blinks quickly, then add it again in the Quillfeather app."
            ],
            [
                "Setup problems with Glimmer bulbs almost always come down to the Wi-Fi network. Here's a checklist:\n\n1. Use 2.4 GHz: the bulbs don't support 5 GHz. If your router combines both bands under one name, temporarily turn off 5 GHz or create a separate 2.4 GHz network.\n2. Stay close: keep your phone within 3 meters of the bulb during setup.\n3. Reset the bulb: switch it off and on 5 times, about one second apart, until it blinks quickly.\n4. Allow permissions: the Quillfeather app needs Bluetooth and location access to find new devices.\n5. Check the password: the network password is case-sensitive, and some special characters can cause problems.\n\nIf the bulb still isn't found, try adding a different bulb from the pack. If that one works, the first bulb may be faulty, and I can send a replacement under the 1-year warranty."
            ],
        ),
        sc(
            [
                "My Ridgeline 27-inch monitor says 'No signal' even though the computer is on.",
                "The Ridgeline monitor just shows a black screen when I plug in my laptop.",
            ],
            ["Ridgeline monitor no signal, please help"],
            [
                "Press the input button on the back of the monitor and select the port you're using: HDMI 1, HDMI 2 or USB-C. If that doesn't help, try another cable. USB-C cables must support video; charge-only cables won't show an image."
            ],
            [
                'A "No signal" message means the monitor is working but isn\'t receiving video. Let\'s narrow it down:\n\n1. Select the right input: press the input button on the back of the Ridgeline and choose HDMI 1, HDMI 2 or USB-C, matching the port you\'ve plugged into.\n2. Reseat the cable at both ends, then restart the computer with the monitor already on.\n3. Try another cable: USB-C cables must support video (DisplayPort Alt Mode); charge-only cables won\'t carry an image. For HDMI, use a High Speed cable.\n4. Check the computer: on a laptop, press the display-switch shortcut and choose "Extend" or "Duplicate".\n5. Reset the monitor: unplug the power cable for 60 seconds, then hold the menu button while plugging it back in to restore factory settings.\n\nIf another computer also gets "No signal" on every port, the monitor is likely faulty, and we\'ll replace it under the 1-year warranty.'
            ],
        ),
        sc(
            [
                "My Porchlight video doorbell keeps going offline every night.",
                "The Porchlight doorbell shows 'offline' in the app, and I'm not getting any alerts.",
            ],
            ["Porchlight doorbell keeps going offline again"],
            [
                "This is usually a weak Wi-Fi signal at the door. In the app, open Device Health and check the signal strength; anything below -65 dBm can drop out. Moving the router closer or adding an extender usually fixes it."
            ],
            [
                "Sorry about the missed alerts. Here's how to get the Porchlight doorbell back online and keep it there:\n\n1. Check the signal: in the app, open Device Health. A signal weaker than -65 dBm can drop out, especially at night when networks are busy.\n2. Improve coverage: move the router closer to the front door or add a Wi-Fi extender near it. Metal doors and brick walls block a lot of signal.\n3. Check the battery: if it's below 20%, the doorbell may go offline to save power. Charge it fully with the included cable, which takes about 5 hours.\n4. Restart: press the reset button on the back for 2 seconds. This keeps your settings.\n5. Update the firmware under Device Settings.\n\nIf it still disconnects after 48 hours, send me the time it last went offline and I'll check the device logs."
            ],
        ),
        sc(
            [
                "My Simmer glass kettle switches off before the water boils.",
                "The Simmer kettle turns off after about a minute, and the water is only lukewarm.",
            ],
            ["Simmer kettle shuts off too early"],
            [
                "That's usually limescale on the heating plate, which makes the sensor think the water has boiled. Fill the kettle halfway with equal parts water and white vinegar, let it sit for 1 hour without boiling, then rinse it 3 times with fresh water."
            ],
            [
                "A Simmer kettle that switches off early is almost always reacting to scale or steam. Please try this:\n\n1. Descale: fill it halfway with equal parts water and white vinegar, or use a citric acid descaler. Let it sit for 1 hour, then empty it and rinse 3 times with fresh water.\n2. Check the lid: it must click shut. A lid that's slightly open lets steam reach the sensor too early.\n3. Fill correctly: keep the water between the MIN and MAX lines. Below the minimum, the overheat protection cuts out within a minute.\n4. Dry the base: make sure the power base and the bottom of the kettle are completely dry before use.\n5. Let it cool: after a boil-dry cut-out, the kettle needs 10 minutes before it can heat again.\n\nIf it still stops early after descaling, it's a sensor fault, and we'll replace the kettle under the 1-year warranty."
            ],
        ),
        sc(
            [
                "My Stride fitness band stopped syncing steps to the app.",
                "The Stride band hasn't synced my sleep data since {date}. Is my data gone?",
            ],
            ["Stride band won't sync anymore"],
            [
                'Open the Quillfeather app, go to Devices > Stride, and tap "Sync now" with the band close to your phone. If it fails, turn Bluetooth off and on, and allow the app to run in the background. The band stores 7 days of data.'
            ],
            [
                "Sync problems with the Stride band are usually a connection or permission issue, and your recent data should still be safe. Please try these steps:\n\n1. Sync manually: open the Quillfeather app, go to Devices > Stride and tap \"Sync now\", keeping the band close to your phone.\n2. Restart Bluetooth on your phone, then restart the band by holding its button for 10 seconds.\n3. Check permissions: allow the app to use Bluetooth and to run in the background, and turn off battery saver for it.\n4. Update the app and the band's firmware from the Devices screen.\n5. Re-pair as a last resort: remove the band in the app and add it again. Data already on the band is kept.\n\nThe band stores up to 7 days of activity and sleep data, so anything older than that may not come back. If it still won't sync, reply with your phone model and app version."
            ],
        ),
    ],
    "warranty": [
        sc(
            [
                "My {product} stopped working after {months} months. Is it covered under warranty?",
                "The {product} from order {order} died completely, and it's less than a year old.",
            ],
            ["{product} broken, under warranty?", "Warranty claim for {product}, order {order}."],
            [
                "Yes, the {product} is covered by our 1-year limited warranty. Start a claim at Support > Warranty with order {order}, the serial number, and a short video of the issue. Approval usually takes 2 business days, then we ship a replacement."
            ],
            [
                "Yes, your {product} is covered, and the claim is straightforward:\n\n1. Go to Support > Warranty and select order {order}.\n2. Enter the serial number, printed on the underside or inside the battery compartment.\n3. Describe the problem and attach a photo or a short video. This speeds up approval a lot.\n4. Approval usually takes 2 business days. You'll then choose between a replacement and a repair.\n5. We send a replacement first, with a prepaid label for the faulty unit, which you return within 30 days.\n\nKeep any accessories and cables that still work, since we only need the main unit back. The replacement carries the rest of the original warranty or 90 days, whichever is longer. If the same model is out of stock, we'll offer the closest equivalent or a full refund of the price you paid."
            ],
        ),
        sc(
            [
                "What exactly does your warranty cover on the {product}?",
                "Before I buy the {product}, can you explain what the warranty includes?",
            ],
            ["what does the warranty cover?"],
            [
                "All Quillfeather products have a 1-year limited warranty covering defects in materials and workmanship. It doesn't cover accidental damage, liquid damage or normal wear. Care+ extends coverage to 3 years and adds accidental damage protection.",
                "One year of cover for manufacturing defects, including batteries that drop below 80% capacity. Drops and spills need Care+.",
            ],
            [
                "Here's a plain-language summary of the warranty on the {product}:\n\nIncluded for 1 year from delivery:\n- defects in materials or workmanship, such as a device that won't power on or a button that stops responding\n- batteries that fall below 80% of their original capacity\n- faults that appear during normal household use\n\nNot included:\n- accidental damage such as drops, cracks or spills\n- cosmetic wear such as scratches and scuffs\n- damage from unauthorized repairs or using the product commercially\n\nIf you want more protection, Care+ can be added within 30 days of purchase. It extends coverage to 3 years and includes up to 2 accidental-damage claims per year, each with a $19 service fee.\n\nThe warranty is tied to the order, not the person, so it transfers if you give the {product} as a gift. You don't need to register the product; the order record is enough."
            ],
        ),
        sc(
            [
                "My {product} broke after {old_months} months. I know it's out of warranty, but is there anything you can do?",
                "The warranty on my {product} ended recently, and now it won't turn on at all.",
            ],
            ["{product} broken, warranty expired, options?"],
            [
                "The {product} is outside the 1-year warranty, but I can offer 25% off a replacement, valid for 30 days. Alternatively, our repair service fixes out-of-warranty devices for a flat $39 plus parts, with a 90-day guarantee on the repair."
            ],
        ),
        sc(
            [
                "I dropped my {product} and cracked it. I bought Care+ with it. How do I claim?",
                "Coffee got spilled on my {product}. Does Care+ cover that?",
            ],
            ["Care+ claim, dropped my {product}"],
            [
                "Care+ covers accidental damage, including drops and spills, with up to 2 claims per year and a $19 service fee each. File it at Support > Warranty > Care+ claim; we'll send a prepaid box and ship a replacement within 5 business days."
            ],
        ),
    ],
    "subscriptions": [
        sc(
            [
                "How do I cancel my Quillfeather Plus membership?",
                "I want to stop my Plus subscription before it renews next month.",
                "Please cancel my Plus membership; I'm not using it enough.",
            ],
            ["cancel my Plus membership please"],
            [
                'Go to Account > Memberships > Quillfeather Plus and select "Cancel membership". Your benefits stay active until the end of the current billing period, and you won\'t be charged again. You can rejoin anytime.',
                "I've cancelled your Plus membership. You'll keep free express shipping and 60-day returns until the end of the current billing period, and there will be no further charges. A confirmation email is on its way.",
                "Done, your Plus membership is cancelled. Benefits continue until the current billing period ends, with no further charges.",
            ],
        ),
        sc(
            [
                "I was just charged $89 for a Plus renewal. I didn't mean to renew. Can I get a refund?",
                "Why was I charged $8.99 on {date}? I thought I had cancelled Plus.",
            ],
            ["unwanted Plus renewal charge, refund please"],
            [
                "Sorry for the surprise. We email a reminder 7 days before each renewal, but it's easy to miss. Since the renewal was within the last 14 days and no Plus benefits were used, I've cancelled it and issued a full refund, due within 5–10 business days."
            ],
        ),
        sc(
            [
                "Can I change how often I get replacement filters for my Alder 300 air purifier?",
                "I'd like to skip my next filter delivery; I still have a spare one.",
                "How does the filter subscription for the Alder 300 work?",
            ],
            ["skip next Alder filter delivery please"],
            [
                "The Alder 300 filter subscription sends a new filter every 6 months for $34, with free shipping. Under Account > Subscriptions, you can skip a delivery, change the interval to 3, 4 or 6 months, or cancel anytime without a fee."
            ],
        ),
        sc(
            [
                "Is Quillfeather Plus worth it? What do I actually get?",
                "What's the difference between the monthly and annual Plus plans?",
            ],
            ["What does Plus membership include?"],
            [
                "Plus costs $8.99 a month or $89 a year, which saves you over 17%. Both plans include free express shipping, 60-day returns, early access to sales, and 10% off Care+ plans, and both can be cancelled anytime."
            ],
            [
                "Here's a full breakdown of Quillfeather Plus so you can decide:\n\nPrice:\n- Monthly: $8.99, billed each month, cancel anytime.\n- Annual: $89 a year, which works out to about $7.42 a month and saves over 17%.\n\nBenefits (the same on both plans):\n1. Free express shipping (1–2 business days) on every order, with no minimum.\n2. Returns extended from 30 to 60 days.\n3. Early access to seasonal sales, usually 24 hours before everyone else.\n4. 10% off Care+ protection plans.\n\nBilling details: we email a reminder 7 days before every renewal. If you cancel within 14 days of a renewal and haven't used any benefits since, you get a full refund. If you mostly place one or two small orders a year, Plus probably isn't worth it; if you order every couple of months or often choose express shipping, the annual plan usually pays for itself."
            ],
        ),
    ],
    "payments": [
        sc(
            [
                "What payment methods do you accept?",
                "Can I pay in installments for the {product}?",
                "Do you take gift cards, or only credit cards?",
            ],
            ["Which payment options do you accept?"],
            [
                "We accept major credit and debit cards, the digital wallets shown at checkout, Quillfeather gift cards, and Pay-in-4, which splits orders from $100 to $1,500 into four interest-free payments every two weeks. We don't accept checks or cash on delivery."
            ],
        ),
        sc(
            [
                "My card keeps getting declined at checkout, even though it works everywhere else.",
                "Payment failed three times when I tried to buy the {product}. What's wrong?",
            ],
            ["card declined at checkout, why though?"],
            [
                "Most declines come from a billing address that doesn't exactly match your bank's records, or a security check your bank sends by text or app. Please confirm both and try again. If it still fails, your bank can tell you the exact reason; we can't see it."
            ],
            [
                "Sorry about the trouble at checkout. We never see the exact reason for a decline, but these steps fix almost all of them:\n\n1. Match the billing address: it must be identical to the one your bank has on file, including the apartment number and ZIP code.\n2. Check the details: confirm the expiry date and the 3- or 4-digit security code.\n3. Approve the security check: many banks send a text or app notification for online purchases. Approve it within 5 minutes, or the payment fails.\n4. Pause before retrying: several failed attempts in a row can trigger a temporary fraud block. Wait 30 minutes before trying again.\n5. Call your bank: they can see the decline and lift any block on the spot.\n\nIf you need the {product} quickly, you can also pay with a digital wallet, a gift card or Pay-in-4. Failed attempts are never charged, though your bank may show a pending hold for up to 5 business days."
            ],
        ),
        sc(
            [
                "Can I use a gift card and pay the rest with my card?",
                "I have two gift cards and want to use both on the {product}. Is that possible?",
            ],
            ["combine gift card with credit card?"],
            [
                'Yes. At checkout, enter up to 2 gift cards under "Gift card or store credit", and the remaining balance goes on your card or another payment method. Gift card balances never expire, and you can check them under Account > Wallet.'
            ],
        ),
        sc(
            [
                "How do I update the card used for my Plus membership? My old one expired.",
                "My card ending in {last4} was replaced by my bank. How do I update it on my account?",
            ],
            ["update expired card on my account"],
            [
                'Go to Account > Wallet, select "Add payment method", and set the new card as default. Active subscriptions and Pay-in-4 plans switch to the default card automatically. You can then remove the card ending in {last4}.'
            ],
        ),
    ],
    "promotions": [
        sc(
            [
                "The promo code {code} says it's invalid. Why won't it work?",
                "I tried {code} at checkout for the {product}, and it didn't apply.",
            ],
            ["{code} not working at checkout", "promo code {code} rejected, but why?"],
            [
                "I looked up {code}: it gives {code_desc}. It didn't apply because {code_reason}. If you think that's wrong, reply with a screenshot of your cart and I'll take another look."
            ],
            [
                "I checked {code}, which gives {code_desc}. In your case it was rejected because {code_reason}.\n\nFor future orders, here's a quick checklist, since codes fail for a handful of reasons:\n\n1. Expiry: most codes are valid for 30 to 60 days; the end date is in the email that sent it.\n2. Minimum spend: the minimum is measured after sale discounts and before shipping and tax.\n3. Exclusions: codes don't apply to gift cards, Care+ plans or clearance items, and some cover only certain categories.\n4. One per order: only one promo code can be used, although Plus discounts and gift cards still stack.\n5. Typing: enter the code without spaces. Copying from an email sometimes adds a hidden space at the end.\n\nIf a code should have worked and didn't, we can apply it to the order afterwards, as long as you contact us within 14 days."
            ],
        ),
        sc(
            [
                "I forgot to enter {code} when I placed order {order}. Can you still apply it?",
                "I just realized I didn't use my {code} code on order {order}.",
            ],
            ["forgot code {code} on {order}"],
            [
                "No problem. Codes can be applied up to 14 days after an order is placed. I've applied {code} to order {order} and refunded the difference to your original payment method; it should appear within 5–10 business days."
            ],
        ),
        sc(
            [
                "Can I use two promo codes on the same order?",
                "I have {code} and a birthday code. Can I stack them on the {product}?",
            ],
            ["Can I stack promo codes together?"],
            [
                "Only one promo code can be used per order, but Plus member discounts and gift cards do stack with it. If you enter a second code, checkout automatically keeps whichever one saves you more.",
                "Only one promo code per order, sorry. Plus member discounts and gift cards still stack with it, though.",
            ],
        ),
        sc(
            [
                "I signed up for the newsletter but never got the welcome discount code.",
                "Where is my 10% welcome code? I subscribed {days} days ago.",
            ],
            ["Never received my welcome code."],
            [
                "Welcome codes are sent within 24 hours of confirming your newsletter subscription. I've resent yours to the email on your account: WELCOME10 gives 10% off your first order with no minimum spend, valid for 30 days.",
                "I've just resent it. Your code is WELCOME10: 10% off your first order, no minimum spend, valid for 30 days.",
            ],
        ),
    ],
    "accessibility_complaints": [
        sc(
            [
                "I use a screen reader, and the 'Place order' button on your checkout page isn't announced.",
                "Your website's checkout doesn't work with my screen reader. I can't finish buying the {product}.",
            ],
            ["checkout not accessible with my screen reader"],
            [
                "I'm sorry, that's a barrier that shouldn't exist. I've logged it with our web team as a priority accessibility bug. Meanwhile, you can order by phone at 1-800-555-0199; we'll match any online price and waive the shipping fee."
            ],
            [
                "Thank you for telling us, and I'm sorry. An unlabeled checkout button is exactly the kind of barrier we're supposed to catch before release. Here's what I've done and what you can do right now:\n\n1. Bug report: I've filed it with our web team as a priority accessibility issue, reference A11Y-{last4}. Fixes for checkout problems are targeted within 10 business days, and I'll email you when it's live.\n2. Workaround: the mobile app's checkout uses native controls and works with the built-in screen readers on phones and tablets.\n3. Order by phone: call 1-800-555-0199 and an agent will place the order for the {product} with you. We'll match any online-only price and waive the shipping fee.\n\nIf you're willing, our accessibility team would value a 20-minute call to hear about other problems you've run into. Participants receive a $25 store credit as thanks. Just reply \"yes\" and they'll reach out."
            ],
        ),
        sc(
            [
                "Do you have the manual for the {product} in large print?",
                "My father has low vision. Is there an audio or large-print guide for the {product}?",
            ],
            ["large print manual for the {product}?"],
            [
                "Yes. Every manual is available as an accessible PDF that works with screen readers and zoom, under Support > Manuals. We can also mail a free large-print copy of the {product} guide within 7 business days; just confirm the address."
            ],
        ),
        sc(
            [
                "I want to file a complaint. The agent I chatted with on {date} was rude and ended the chat on me.",
                "Your support person was dismissive and didn't even read my message properly. I want this escalated.",
            ],
            ["formal complaint about your support agent"],
            [
                "I'm very sorry; that's not the service we expect from our team. I've escalated your complaint to our customer experience manager, who will review the conversation and reply within 2 business days. I've also added a $15 store credit to your account."
            ],
        ),
        sc(
            [
                "Your delivery driver threw my package over the fence, and now the {product} is broken.",
                "The courier left order {order} in the rain, and the box was soaked through.",
            ],
            ["courier damaged my package, order {order}"],
            [
                "I'm really sorry. I've reported the driver's handling to the carrier and I'm sending a replacement {product} by express shipping at no cost. Please keep the damaged item for 14 days in case the carrier asks for photos."
            ],
        ),
        sc(
            [
                "This is my third bad experience with your store: a late delivery, a broken item and no follow-up. I want someone to take this seriously.",
                "I've had problems with almost every order this year, including {order}. What are you going to do about it?",
            ],
            ["Formal complaint about repeated order problems."],
            [
                "I'm sorry; that's clearly not good enough. I've opened a formal complaint, reference CX-{last4}, and assigned it to a senior case manager, who will contact you within 2 business days to review your recent orders and agree a resolution."
            ],
            [
                "You're right to expect better, and I'm sorry we've let you down more than once. Here's how I'm handling this so it doesn't get lost again:\n\n1. Formal complaint: I've opened case CX-{last4} and linked all your orders from the past 12 months, including {order}, so nobody has to ask you to repeat yourself.\n2. Named owner: a senior case manager will own the case from start to finish and will contact you within 2 business days, by email or phone as you prefer.\n3. Review: they'll check what went wrong at each step, whether that was the carrier, our warehouse or our support team, and share what they find.\n4. Resolution: they have the authority to offer refunds, replacements or store credit without further approvals.\n\nIf you don't hear from them within 2 business days, reply to this message and it will go straight to the customer experience manager. Thank you for giving us the chance to put this right."
            ],
        ),
    ],
    "privacy": [
        sc(
            [
                "How can I get a copy of all the personal data you have about me?",
                "I'd like to request my data under privacy law. What do I need to do?",
            ],
            ["request a copy of my data"],
            [
                "Go to Account > Privacy > Request my data. We'll email a download link once the file is ready, usually within 48 hours and always within 30 days. It includes orders, addresses, support chats and marketing preferences."
            ],
        ),
        sc(
            [
                "Please delete my account and all my personal information.",
                "I want to close my Quillfeather account permanently. How does that work?",
            ],
            ["delete my account and data please"],
            [
                "You can request deletion under Account > Privacy > Delete account. We confirm by email and complete it within 30 days. Order and tax records are kept for 7 years because the law requires it, but they're no longer linked to a usable profile."
            ],
            [
                "I can help with that. Here's exactly what happens when you delete your Quillfeather account:\n\n1. Request: go to Account > Privacy > Delete account, or reply here to confirm and I'll submit it for you. We'll send a confirmation email, and the request is cancelled if the link isn't clicked within 7 days.\n2. Open items first: any open orders, returns or warranty claims must be finished, and a Plus membership is cancelled without a further charge.\n3. Deletion: within 30 days we erase your profile, saved addresses, payment tokens, wishlists, reviews and support history.\n4. What we keep: invoices and tax records are retained for 7 years because the law requires it. They're stored separately and can't be used for marketing.\n5. Gift card balances are lost after deletion, so please spend them or ask us to refund them first.\n\nDeletion can't be undone, but you're always welcome to create a new account later."
            ],
        ),
        sc(
            [
                "I keep getting marketing emails even though I unsubscribed {days} days ago.",
                "How do I stop all promotional emails and texts from you?",
            ],
            ["stop sending me marketing emails"],
            [
                "I've removed your email address and phone number from all marketing lists. Messages that were already scheduled can take up to 10 days to stop. You'll still get order confirmations and shipping updates, since those aren't marketing."
            ],
        ),
        sc(
            [
                "Do you sell my personal information to third parties?",
                "Who do you share my address and phone number with?",
            ],
            ["do you sell my data?"],
            [
                "We don't sell personal information. We only share what's needed to complete your orders: your name and address with delivery carriers, and payment details with our payment processor. The full list of partners is in our privacy policy.",
                "No, we never sell personal data. We only share what carriers and our payment processor need to complete your orders.",
            ],
        ),
        sc(
            [
                "Where are the videos from my Porchlight doorbell stored, and who can see them?",
                "Can Quillfeather staff watch my Porchlight doorbell recordings?",
            ],
            ["who can see my doorbell videos"],
            [
                "Porchlight clips are encrypted and stored for 30 days, then deleted automatically. Our staff can't view them unless you share a clip with support yourself. You can delete recordings anytime in the app under Device > Video history."
            ],
        ),
    ],
}
TOPIC_WEIGHTS = {"troubleshooting": 2}  # several product types; every other topic has weight 1


# ---------------------------------------------------------------- composition
def words(text):
    return len(text.split())


def compose(rng, topic, want_long):
    """Return one (user, assistant) pair, or None if it falls outside the length limits."""
    scenarios = [s for s in TOPICS[topic] if s["long"]] if want_long else TOPICS[topic]
    scen, tone, slots = rng.choice(scenarios), rng.choice(list(OPENER)), make_slots(rng)
    if tone == "terse":
        user = rng.choice(scen["terse"])
    elif tone == "detailed":
        context, core = rng.choice(CONTEXT), rng.choice(scen["users"])
        parts = [context, core] if rng.random() < 0.5 else [core, context]
        user = " ".join(parts + [rng.choice(SUFFIX["detailed"])])
    else:
        user = " ".join([rng.choice(PREFIX[tone]), rng.choice(scen["users"]), rng.choice(SUFFIX[tone])])
    body = rng.choice(scen["long"] if want_long else scen["short"])
    opener = rng.choice(OPENER[tone])
    if (tone == "frustrated" and body.startswith(APOLOGIES)) or (tone == "terse" and body.startswith(ACKS)):
        opener = ""  # the body already apologizes / acknowledges; don't do it twice
    answer = (opener + (" " if opener else "") + body + " " + rng.choice(CLOSER)).strip()
    user, answer = user.strip().format(**slots), answer.format(**slots)
    lo, hi = LONG_WORDS if want_long else SHORT_WORDS
    if not (lo <= words(answer) <= hi and USER_WORDS[0] <= words(user) <= USER_WORDS[1]):
        return None
    return user, answer


def generate(seed=SEED, n=N_CONVERSATIONS):
    rng = random.Random(seed)
    units = [t for t in TOPICS for _ in range(TOPIC_WEIGHTS.get(t, 1))]
    pairs, seen_users, schedule = [], set(), []
    while len(pairs) < n:
        if not schedule:
            schedule = units[:]
            rng.shuffle(schedule)
        topic, want_long = schedule.pop(), rng.random() < LONG_SHARE
        for _ in range(500):
            pair = compose(rng, topic, want_long)
            if pair and pair[0] not in seen_users:
                break
        else:
            raise RuntimeError(f"could not compose a new conversation for topic {topic!r}")
        seen_users.add(pair[0])
        pairs.append(pair)
    return pairs


def render(pairs):
    """Return (jsonl_bytes, csv_bytes) for the conversations."""
    jsonl = "".join(
        json.dumps(
            {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}, ensure_ascii=False
        )
        + "\n"
        for u, a in pairs
    )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["instruction", "output"])
    writer.writerows(pairs)
    return jsonl.encode("utf-8"), buf.getvalue().encode("utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="regenerate in memory; exit 1 if the files on disk differ")
    args = parser.parse_args(argv)
    outputs = dict(zip((JSONL_PATH, CSV_PATH), render(generate()), strict=False))
    if args.check:
        stale = [p for p, data in outputs.items() if not p.is_file() or p.read_bytes() != data]
        for path in stale:
            print(f"out of date: {path}", file=sys.stderr)
        if stale:
            print("run: python examples/make_sample_data.py", file=sys.stderr)
            return 1
        print(f"sample data is up to date ({len(outputs)} files)")
        return 0
    for path, data in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
