"""German wording of everything a customer sees: notifications, the chat, the tracking page
(`core.texts.CUSTOMER_KEYS`). Staff read English (`core.texts.staff_language`)."""

LOCALE = "de_DE"

STATUS = {
    "new": "neu",
    "assigned": "zugewiesen",
    "picked_up": "abgeholt",
    "out_for_delivery": "unterwegs",
    "arrived": "an der Tür",
    "delivered": "zugestellt",
    "failed": "nicht zugestellt",
    "rescheduled": "neu geplant",
    "returned": "zurück an den Absender",
    "cancelled": "storniert",
}

VERBS = {
    "new": "zurückgestellt werden",
    "assigned": "einem Fahrer zugewiesen werden",
    "picked_up": "als abgeholt markiert werden",
    "out_for_delivery": "in die Zustellung gehen",
    "arrived": "als angekommen markiert werden",
    "delivered": "als zugestellt markiert werden",
    "failed": "als nicht zugestellt markiert werden",
    "rescheduled": "neu geplant werden",
    "returned": "als zurückgeschickt markiert werden",
    "cancelled": "storniert werden",
}

TEXTS = {
    **{f"status.{key}": value for key, value in STATUS.items()},
    **{f"verb.{key}": value for key, value in VERBS.items()},
    "error.transition": "Bestellung {order} ist {status} und kann deshalb nicht {verb}.",
    "error.final": (
        "Bestellung {order} ist bereits {status}; das ist endgültig, sie kann nicht mehr {verb}."
    ),
    "error.too_many_attempts": (
        "Bestellung {order} hatte schon {attempts}, mehr sind nicht erlaubt."
    ),
    "order.attempts.one": "1 Zustellversuch",
    "order.attempts.other": "{count} Zustellversuche",
    # --- notifications ---
    "msg.customer.order_confirmed": (
        "Ihre Bestellung {ref} ist bestätigt: Lieferung an {address}.{window_line}\n"
        "Verfolgen: {link}"
    ),
    "msg.customer.order_picked_up": "Ihre Bestellung {ref} wurde abgeholt.",
    "msg.customer.order_out_for_delivery": (
        "{driver} ist mit Ihrer Bestellung {ref} unterwegs.{eta_line}\nLive verfolgen: {link}"
    ),
    "msg.customer.order_delayed": (
        "Entschuldigung, Ihre Bestellung {ref} verspätet sich.{eta_line} {driver} ist unterwegs."
    ),
    "msg.customer.driver_nearby": "{driver} ist gleich da mit Ihrer Bestellung {ref}.{eta_line}",
    "msg.customer.driver_arrived": "{driver} steht mit Ihrer Bestellung {ref} vor der Tür.",
    "msg.customer.order_delivered": (
        "Ihre Bestellung {ref} wurde zugestellt. Danke! Wie war es? Tippen Sie eine Bewertung."
    ),
    "msg.customer.order_failed": (
        "Wir konnten Ihre Bestellung {ref} nicht zustellen: {reason}. Wählen Sie eine neue "
        "Zeit oder sagen Sie uns, wie wir Sie erreichen."
    ),
    "msg.customer.order_failed_no_reason": (
        "Wir konnten Ihre Bestellung {ref} diesmal nicht zustellen. Wählen Sie eine neue Zeit "
        "oder sagen Sie uns, wie wir Sie erreichen."
    ),
    "msg.customer.order_rescheduled": "Ihre Bestellung {ref} ist neu geplant.{window_line}",
    "msg.customer.order_returned": "Ihre Bestellung {ref} ging zurück an den Absender.",
    "msg.customer.order_cancelled": "Ihre Bestellung {ref} wurde storniert.",
    "msg.eta_line": " Ankunft gegen {eta}.",
    "msg.window_line": " Zeit: {window}.",
    "msg.someone": "Ihr Fahrer",
    "time.span": "{start:%d.%m.} {start:%H:%M}–{end:%H:%M}",
    "action.customer.pick_new_slot": "Neue Zeit wählen",
    "action.customer.leave_instructions": "Hinweis hinterlassen",
    "action.customer.rate": "Bewerten",
    "reason.not_home": "niemand zu Hause",
    "reason.wrong_address": "falsche Adresse",
    "reason.refused": "Annahme verweigert",
    "reason.no_access": "kein Zugang zum Gebäude",
    "reason.damaged": "Paket beschädigt",
    "reason.other": "anderer Grund",
    # --- the chat ---
    "start.welcome": (
        "Hallo! Hier ist {bot}, ein Lieferassistent.\n"
        "• Kunden: Öffnen Sie den Link zu Ihrer Bestellung, um hier Neuigkeiten zu bekommen.\n"
        "• Fahrer und Disponenten: Öffnen Sie den Einladungslink Ihres Teams."
    ),
    "start.subscribed": (
        "Sie bekommen hier Neuigkeiten zu Bestellung {ref}.\n{status}\n"
        "Fragen Sie jederzeit „Wo ist meine Bestellung?“."
    ),
    "start.unknown_link": (
        "Dieser Link ist nicht gültig (vertippt oder sehr alt). Bitten Sie den Absender um "
        "einen neuen."
    ),
    "invite.used": "Diese Einladung wurde schon benutzt. Bitten Sie um eine neue.",
    "invite.expired": "Diese Einladung ist abgelaufen. Bitten Sie um eine neue.",
    "role.plural.owner": "Inhaber",
    "role.plural.dispatcher": "Disponenten",
    "role.plural.driver": "Fahrer",
    "role.plural.customer": "Kunden",
    "help.stranger": (
        "Ich schicke Neuigkeiten zu Bestellungen und helfe Lieferteams.\n"
        "Öffnen Sie den Link zu Ihrer Bestellung oder Ihre Einladung, um zu beginnen."
    ),
    "help.customer": (
        "Fragen Sie „Wo ist meine Bestellung?“ nach Status und Ankunftszeit. Sie bekommen eine "
        "Nachricht, wenn sie unterwegs ist, wenn der Fahrer in der Nähe ist und wenn sie "
        "zugestellt ist."
    ),
    "denied": "{command} ist nur für {roles}. Mit /help sehen Sie, was Sie tun können.",
    "denied.button": "Dieser Knopf ist nicht für Sie oder abgelaufen.",
    "customer.question_words": (
        "wo wann status* bestell* liefer* paket* sendung* ankunft* ankomm* kommt komm* zustell*"
    ),
    "customer.no_orders": (
        "Ich finde keine offene Bestellung von Ihnen. Nutzen Sie den Link zu Ihrer Bestellung."
    ),
    "customer.order_line": "{ref}: {status}.{eta_line}{driver_line}\nVerfolgen: {link}",
    "customer.driver_line": " Fahrer: {driver}.",
    "customer.not_yours": "Bestellung {order} ist nicht Ihre.",
    "customer.pick_slot": "Wählen Sie eine neue Zeit für Bestellung {ref}:",
    "customer.rescheduled": "Erledigt: Bestellung {ref} kommt {window}.",
    "customer.instructions_prompt": (
        "Schreiben Sie Ihren Hinweis für den Fahrer (Torcode, Nachbar …)."
    ),
    "customer.instructions_saved": "Danke, der Fahrer sieht Ihren Hinweis.",
    "customer.instructions_length": "Hinweise sollten 2 bis 500 Zeichen lang sein.",
    "customer.order_final": "Bestellung {order} ist schon abgeschlossen.",
    "customer.rating_range": "Bewertungen gehen von 1 bis 5.",
    "customer.rate_after_delivery": "Sie können Bestellung {order} nach der Zustellung bewerten.",
    "customer.rated": "Danke für Ihre Bewertung mit {stars}★!",
    "fallback.unknown": "Das habe ich nicht verstanden.",
    "here.done": "Alles klar: Ihre Neuigkeiten kommen ab jetzt in diesen Chat.",
    "fallback.unsupported": (
        "Diese Art von Nachricht kann ich nicht lesen. Bitte schreiben Sie Text oder senden Sie"
        " ein Foto, ein Dokument oder einen Standort."
    ),
    "conversation.expired": (
        "Dieses Gespräch ist abgelaufen, daher habe ich das nicht übernommen. Bitte neu beginnen."
    ),
    "finish_first": "Bitte erst beenden, was wir begonnen haben, oder /cancel.",
    "cancelled": "OK, abgebrochen. Nichts wurde geändert.",
    "error.generic": (
        "Bei uns ist etwas schiefgegangen; nichts wurde geändert. Bitte versuchen Sie es noch "
        "einmal."
    ),
    "error.unreadable": (
        "Ihre Nachricht enthält Zeichen, die ich nicht lesen kann (etwa ein NUL); nichts wurde"
        " gespeichert. Bitte tippen Sie sie noch einmal."
    ),
    "error.unavailable": (
        "Bei uns gibt es gerade ein Problem. Ihre Nachricht geht nicht verloren: Wir bearbeiten"
        " sie, sobald es behoben ist; Sie müssen sie nicht noch einmal senden."
    ),
    "command.start": "Start",
    "command.help": "Was ich kann",
    # --- tracking page ---
    "tracking.unknown": (
        "Diesen Sendungslink gibt es nicht. Prüfen Sie ihn oder bitten Sie den Shop um einen neuen."
    ),
    "tracking.expired": "Diese Lieferung ist abgeschlossen und ihre Seite abgelaufen.",
    "page.title": "Ihre Lieferung {ref}",
    "page.step.confirmed": "Bestätigt",
    "page.step.on_the_way": "Unterwegs",
    "page.step.nearby": "Gleich da",
    "page.step.arrived": "An Ihrer Tür",
    "page.step.delivered": "Zugestellt",
    "page.step.failed": "Nicht zugestellt",
    "page.step.rescheduled": "Neu geplant",
    "page.step.returned": "Zurück an den Absender",
    "page.step.cancelled": "Storniert",
    "page.arriving": "Ankunft",
    "page.window": "Lieferzeitraum",
    "page.distance": "Entfernung",
    "page.driver": "Ihr Fahrer",
    "page.rate": "Wie war Ihre Lieferung?",
    "page.comment": "Möchten Sie etwas ergänzen? (optional)",
    "page.send": "Senden",
    "page.thanks": "Danke für Ihre Bewertung!",
    "page.proof": "Zustellnachweis",
    "page.signature": "Unterschrift",
    "page.subscribe": "Neuigkeiten in Telegram bekommen",
    "page.subscribe_whatsapp": "Neuigkeiten in WhatsApp bekommen",
}
