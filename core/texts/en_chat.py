"""English wording of the chat: notifications, prompts, menus and answers.

Notifications are `msg.<template>`; buttons `action.<name>`; `{link}` is the tracking page.
"""

TEXTS = {
    # --- notifications (outbox templates) ---
    "msg.chat.reply": "{text}",  # a direct reply handed to the outbox, already worded
    "msg.customer.order_confirmed": (
        "Your order {ref} is confirmed: delivery to {address}.{window_line}\nTrack it: {link}"
    ),
    "msg.customer.order_picked_up": "Your order {ref} has been picked up.",
    "msg.customer.order_out_for_delivery": (
        "{driver} is on the way with your order {ref}.{eta_line}\nFollow it live: {link}"
    ),
    "msg.customer.order_delayed": (
        "Sorry, your order {ref} is running late.{eta_line} {driver} is on the way."
    ),
    "msg.customer.driver_nearby": "{driver} is nearly there with your order {ref}.{eta_line}",
    "msg.customer.driver_arrived": "{driver} is at your door with your order {ref}.",
    "msg.customer.order_delivered": (
        "Your order {ref} was delivered. Thank you! How did it go? Tap a rating."
    ),
    "msg.customer.order_failed": (
        "We could not deliver your order {ref}: {reason}. Pick a new time, or tell us how to "
        "reach you."
    ),
    # the driver's own words (reason "other") go to dispatch only
    "msg.customer.order_failed_no_reason": (
        "We could not deliver your order {ref} this time. Pick a new time, or tell us how to "
        "reach you."
    ),
    "msg.customer.order_rescheduled": "Your order {ref} is rescheduled.{window_line}",
    "msg.customer.order_returned": "Your order {ref} went back to the sender.",
    "msg.customer.order_cancelled": "Your order {ref} was cancelled.",
    "msg.driver.signed": "Order {ref} signed for by {name} on the pad: delivered.",
    "msg.driver.order_assigned": (
        "New stop: order {ref}, {address}.{window_line}\nIt is stop {position} of your route."
    ),
    "msg.driver.order_unassigned": "Order {ref} ({address}) was taken off your route.",
    "msg.driver.route_changed.one": "🔄 Your route changed: 1 stop now.{changes}",
    "msg.driver.route_changed.other": "🔄 Your route changed: {count} stops now.{changes}",
    "msg.route.added": "\n➕ New: {refs}",
    "msg.route.removed": "\n➖ Taken off: {refs}",
    "msg.route.first": "\n➡️ Next: {ref}, {address}",
    "msg.driver.order_cancelled": "Order {ref} ({address}) was cancelled: skip it.",
    "msg.driver.share_location_again": (
        "Your location has not reached us for a while. Please share your live location again: "
        "📎 → Location → Share My Live Location."
    ),
    "msg.dispatcher.order_failed": "⚠️ Order {ref} failed (attempt {attempt}): {reason}.",
    "msg.dispatcher.order_returned": "Order {ref} was returned to the sender.",
    "msg.dispatcher.order_unassignable": "⚠️ Order {ref} could not be assigned: {reason}.",
    "msg.dispatcher.order_at_risk": (
        "⚠️ Order {ref} will be late: {driver} is expected {reason} after its window."
    ),
    "msg.dispatcher.chat_undeliverable": (
        "⚠️ {name} blocked the bot, so they no longer get messages{about}."
    ),
    "msg.dispatcher.chat_unreachable": (
        "⚠️ {name} cannot be reached on {channel} ({reason}), so they no longer get messages"
        " there{about}. Writing to us again reconnects them."
    ),
    "msg.dispatcher.shift_end_on_board": (
        "⚠️ {driver} asked to end the shift with parcels on board: {refs}. The shift goes on "
        "until they are delivered or marked failed."
    ),
    "msg.dispatcher.driver_stale": (
        "⚠️ {driver}'s location is {age} during the shift; I asked them to share it again."
    ),
    "msg.about_order": " (order {ref})",
    "msg.age_minutes": "{minutes} min old",
    "msg.age_never": "missing",
    "msg.eta_line": " Arriving around {eta}.",
    "msg.window_line": " Time: {window}.",
    "msg.someone": "Your driver",
    "time.span": "{start:%a %d %b} {start:%H:%M}–{end:%H:%M}",
    # --- buttons ---
    "action.order.open": "Open",
    "action.order.assign": "Assign",
    "action.order.reassign": "Reassign",
    "action.order.cancel": "Cancel order",
    "action.order.change_window": "Change window",
    "order.window_pick": "New delivery window for order {ref}:",
    "order.window_changed": "Order {ref} now has the window {window}; it is being placed again.",
    "action.order.reschedule": "Reschedule",
    "action.order.return": "Return",
    "action.driver.open_order": "Open stop",
    "action.driver.ask_location": "Ask again",
    "action.customer.pick_new_slot": "Pick a new time",
    "action.customer.leave_instructions": "Leave instructions",
    "action.customer.rate": "Rate",
    "button.arrived": "📍 Arrived",
    "button.picked_up": "📦 Picked up",
    "button.delivered": "✅ Delivered",
    "button.failed": "✖️ Failed",
    "button.undo": "↩️ Undo",
    "button.navigate": "🧭 Navigate",
    "button.confirm": "✅ Create",
    "button.edit": "✏️ Start over",
    "button.abort": "Cancel",
    "button.yes_cancel": "Yes, cancel it",
    "button.share_location": "📍 Send my location",
    "button.choose": "Choose",
    # --- joining ---
    "start.welcome": (
        "Hi! This is {bot}, a delivery assistant.\n"
        "• Customers: open the link you got with your order to receive its updates here.\n"
        "• Drivers and dispatchers: open the invite link your team sent you."
    ),
    "start.joined": "Welcome, {name}! You are now {role}.",
    "start.subscribed": (
        "You will get updates about order {ref} here.\n{status}\n"
        "Ask me “where is my order?” any time."
    ),
    "start.unknown_link": (
        "That link is not valid (it may be mistyped or very old). Ask the sender for a new one."
    ),
    "invite.used": "This invite has been used already. Ask for a new one.",
    "invite.expired": "This invite has expired. Ask for a new one.",
    "role.owner": "owner",
    "role.dispatcher": "dispatcher",
    "role.driver": "driver",
    "role.customer": "customer",
    "role.a.owner": "an owner",
    "role.a.dispatcher": "a dispatcher",
    "role.a.driver": "a driver",
    "role.a.customer": "a customer",
    "role.plural.owner": "owners",
    "role.plural.dispatcher": "dispatchers",
    "role.plural.driver": "drivers",
    "role.plural.customer": "customers",
    # --- roles and help ---
    "denied": "Sorry, {command} is for {roles}. Type /help to see what you can do.",
    "denied.button": "This button is not for you, or it has expired.",
    "help.stranger": (
        "I deliver updates about orders and help delivery teams.\n"
        "Open the link from your order or your invite to get started."
    ),
    "help.customer": (
        "Ask “where is my order?” for its status and arrival time. You will get a message when "
        "it is on the way, when the driver is close, and when it is delivered."
    ),
    "help.driver": (
        "/shift – start or end your shift\n/route – your stops in order, with navigation\n"
        "/stops – your stops on a page: navigation, proof photos, your position\n"
        "/hours 08:00-16:00 – your working hours, so your route is ready when you start\n"
        "Share your live location during the shift so dispatch can plan around you."
    ),
    "help.dispatcher": (
        "/neworder – create an order\n/orders [status] – list orders\n"
        "/order REF – one order, by its reference (or #number)\n"
        "/drivers – who is on shift\n/assign REF driver – give an order to a driver\n"
        "/board – the live board: drivers on a map, waiting and late orders\n"
        "/dispatch – assign all waiting orders\n/optimize – re-plan all routes\n"
        "/import – send a CSV file of orders\n{invite} – an invite link\n"
        "/report [today|yesterday|7d|YYYY-MM-DD] – the numbers, a chart and a CSV"
    ),
    "help.invite": "/invite driver|dispatcher",
    "help.invite_owner": "/invite driver|dispatcher|owner",
    "command.start": "Start",
    "command.help": "What I can do",
    "command.shift": "Start or end your shift",
    "command.route": "Your stops",
    "command.stops": "Your stops on a page",
    "command.hours": "Your working hours",
    "command.neworder": "Create an order",
    "command.orders": "List orders",
    "command.order": "Show one order",
    "command.drivers": "Drivers",
    "command.assign": "Assign an order",
    "command.board": "Live board",
    "board.open": "The live board: drivers on a map, their routes, waiting and late orders.",
    "button.board": "🗺 Open the board",
    "command.dispatch": "Assign waiting orders",
    "command.optimize": "Re-plan routes",
    "command.import": "Import orders from CSV",
    "command.invite": "Invite a driver or dispatcher",
    "command.report": "Report",
    # --- driver ---
    "shift.started": (
        "Your shift has started. Now share your live location: tap 📎 → Location → "
        "“Share My Live Location” and pick 8 hours."
    ),
    "shift.ended": "Your shift has ended. Thank you!{left}",
    "shift.left.one": " 1 stop goes back to dispatch.",
    "shift.left.other": " {count} stops go back to dispatch.",
    "shift.on_board": (
        "You still have parcels on board: {refs}. Deliver them or mark them failed, then end "
        "your shift. Your shift goes on; the dispatchers know."
    ),
    "shift.ask_end": "You are on shift. End it now?",
    "shift.end_button": "End shift",
    "hours.show": (
        "Your working hours: {starts}–{ends}, every day. /hours 08:00-16:00 changes them, "
        "/hours off removes them."
    ),
    "hours.set": (
        "Your working hours are now {starts}–{ends}, every day: from {starts} stops are planned "
        "for you before you start your shift, and your route ends by {ends}. /hours off "
        "removes them."
    ),
    "hours.none": (
        "You have no working hours: stops are planned for you only while you are on shift. "
        "Set them like /hours 08:00-16:00."
    ),
    "hours.off": (
        "Your working hours are removed: stops are planned for you only while you are on shift."
    ),
    "hours.invalid": "“{text}” are not working hours: write them like /hours 08:00-16:00.",
    "hours.backwards": (
        "“{text}”: your hours must start before they end, within one day, like /hours 08:00-16:00."
    ),
    "shift.not_started": "Start your shift with /shift first, then share your live location.",
    "location.live_started": "Thanks, I can see you. Live location until {until}.",
    "location.stopped": "You stopped sharing your location. Share it again to keep ETAs right.",
    "location.static": "Got your location. Please share a *live* location during your shift.",
    "location.pin": "Got your location. Send it again (📎 → Location) when you reach each stop.",
    "route.empty": "You have no stops right now.",
    "route.loaded_button": "📦 Loaded",
    "route.loaded.one": "📦 1 parcel is on board: it stays on your route.",
    "route.loaded.other": "📦 {count} parcels are on board: they stay on your route.",
    "route.loaded_none": "Nothing to load: your parcels are on board already.",
    "route.start_button": "▶️ Start route",
    "route.started": "On your way: {ref}, {address}. The customer has been told.",
    "route.under_way": "You are on your way already; finish that stop first.",
    "route.nothing_to_start": "Nothing to start: your route has no stop waiting.",
    "route.header.one": "Your route (1 stop):",
    "route.header.other": "Your route ({count} stops):",
    "route.stop": "{position}. {ref} · {status}\n{address}{eta}{window}\nFor {customer}{notes}",
    "route.eta": "\nETA {eta}",
    "route.window": " · window {window}",
    "route.notes": "\nNote: {notes}",
    "stop.pickup": "{position}. Pick up {ref}\n{address}{window}",
    "driver.not_yours": "Order {order} is not on your route.",
    "driver.cannot_undo": "That can no longer be undone for order {order}.",
    "driver.undone": "Undone: order {ref} is {status} again.",
    "driver.arrived": "Arrived at {ref}. When you hand it over, tap Delivered.",
    "driver.picked_up": "Picked up {ref}.",
    "driver.send_photo": "Send a photo of the delivered parcel for order {ref}.",
    "driver.send_name": "Type the name of the person who took order {ref}.",
    "driver.sign": (
        "Order {ref} needs the recipient's signature: open the pad and hand them the phone "
        "(or type their name here)."
    ),
    "driver.sign_after_photo": (
        "Photo saved. Order {ref} also needs the recipient's signature: open the pad and hand "
        "them the phone."
    ),
    "driver.sign_expected": "Order {ref} waits for the recipient's signature on the pad.",
    "button.sign": "Signature pad",
    "button.stops_page": "Your stops",
    "driver.stops_page": (
        "Your stops on one page: navigation, Arrived / Delivered / Failed, proof photos; it "
        "shares your position while it is open."
    ),
    "driver.send_pin": "Ask the customer for their PIN for order {ref} and type it.",
    "driver.delivered": "Order {ref} delivered. ✅{next}",
    "driver.next_stop": "\nNext: {ref}, {address}.",
    "driver.fail_reason": "Why could order {ref} not be delivered?",
    "driver.fail_other": (
        "Type what happened with order {ref}. Dispatch reads it; the customer is only told "
        "that the delivery could not be made."
    ),
    "driver.failed": (
        "Order {ref} marked failed: {reason}. The customer is offered a new time.{next}"
    ),
    "driver.failed_note": (
        "Order {ref} marked failed. Your note went to dispatch; the customer is offered a new "
        "time.{next}"
    ),
    "driver.photo_expected": "Please send a photo of order {ref}, or /cancel.",
    "driver.proof_spooled": (
        "Photo of order {ref} received and kept. The file store is out for a moment; it will"
        " be filed as soon as it is back. Nothing more to do."
    ),
    "reason.not_home": "nobody home",
    "reason.wrong_address": "wrong address",
    "reason.refused": "refused by the recipient",
    "reason.no_access": "no access to the building",
    "reason.damaged": "damaged parcel",
    "reason.other": "other reason…",
    "proof.too_large": "That photo is too large (over {mb} MB). Send a smaller one.",
    "proof.not_image": "That is not a photo I can read. Send a JPEG, PNG or WebP photo.",
    "proof.name_length": "Type the recipient's name (2 to 200 letters).",
    "proof.pin_wrong": "That PIN is not right for order {order}. Ask the customer again.",
    "proof.download_failed": "I could not fetch that photo from Telegram. Please send it again.",
    # --- customer ---
    "customer.question_words": (  # "*": any word starting so; matched in every language
        "where* status* when* eta* track* order* arriv* deliver* come* coming*"
    ),
    "customer.no_orders": "I can't find an open order for you. Use the link from your order.",
    "customer.order_line": "{ref}: {status}.{eta_line}{driver_line}\nTrack it: {link}",
    "customer.driver_line": " Driver: {driver}.",
    "customer.not_yours": "Order {order} is not one of yours.",
    "customer.pick_slot": "Pick a new time for order {ref}:",
    "customer.rescheduled": "Done: order {ref} will come {window}.",
    "customer.instructions_prompt": (
        "Type your instructions for the driver (gate code, neighbour…)."
    ),
    "customer.instructions_saved": "Thanks, the driver will see your note.",
    "customer.instructions_length": "Instructions should be 2 to 500 characters.",
    "customer.order_final": "Order {order} is finished already.",
    "customer.rating_range": "Ratings go from 1 to 5.",
    "customer.rate_after_delivery": "You can rate order {order} once it is delivered.",
    "customer.rated": "Thank you for rating {stars}★!",
    # --- dispatcher ---
    "orders.none": "No orders{which}.",
    "orders.header.one": "1 order{which}{more}:",
    "orders.header.other": "{count} orders{which}{more}:",
    "orders.more": " (first {shown})",
    "orders.line": "{ref} · {status} · {address}{driver}",
    "orders.bad_status": "{text!r} is not a status. Use one of: {statuses}.",
    "order.card": (
        "Order {ref} · {status}\nCustomer: {customer}{phone}\nAddress: {address}{unlocated}\n"
        "{window}{driver}{eta}Attempts: {attempts}{notes}\nTracking: {link}{subscribe}{proof}"
    ),
    "order.card_subscribe": "\nCustomer's link for chat updates: {link}",
    "order.card_driver": "Driver: {driver}\n",
    "order.card_eta": "ETA: {eta}\n",
    "order.card_notes": "\nNotes: {notes}",
    "order.proof_link": "\nProof photo (link valid until {until}): {url}",
    "order.signature_link": "\nSigned by {name} (link valid until {until}): {url}",
    "order.unlocated": " (no map point yet)",
    "order.usage": (
        "Write /order and the order's reference, like /order A-1001 (or #12 for its number)."
    ),
    "order.cancel_confirm": "Cancel order {ref}? The customer will be told.",
    "order.cancelled": "Order {ref} is cancelled.",
    "order.pick_driver": "Who should take order {ref}?",
    "order.assigned": "Order {ref} → {driver}.",
    "order.reschedule_pick": "New time for order {ref}:",
    "order.rescheduled": "Order {ref} rescheduled to {window}.",
    "order.returned": "Order {ref} marked returned.",
    "assign.usage": (
        "Write /assign, the order's reference and the driver, like /assign A-1001 Ana."
    ),
    "board.no_such_driver": "There is no driver called {driver!r}. /drivers lists them.",
    "board.which_driver": "{driver!r} matches several drivers ({names}); write more of the name.",
    "drivers.none": "No drivers yet. Invite one with /invite driver.",
    "drivers.line": "{mark} {name} · {load}{seen}{next}",
    "drivers.load.one": "1 stop",
    "drivers.load.other": "{count} stops",
    "drivers.seen": " · seen {minutes} min ago{live}",
    "drivers.live": " (live)",
    "drivers.next": "\n   next: {stop}",
    "dispatch.summary": "Dispatched: {assigned} assigned, {left} left waiting.",
    "dispatch.line": "• {ref} → {driver}",
    "dispatch.left": "• {ref}: {reason}",
    "dispatch.nothing": "There is nothing waiting to dispatch.",
    "optimize.working": "Re-planning all routes… ⏳",
    "optimize.progress": "Re-planning all routes… {seconds} s",
    "optimize.result": (
        "Routes re-planned: {minutes} min and {km} km saved against the current plan."
    ),
    "optimize.no_gain": "The current plan is already as good as I can find.",
    "plan.figures": (
        "Plan from now — drivers {drivers}, stops {stops}: paid {paid} h, driving {drive} h, "
        "{km} km, cost {cost} (at {per_hour}/h, {per_km}/km)"
    ),
    "import.prompt": "Send the CSV file of orders as a document.",
    "import.created.one": "Imported 1 order.",
    "import.created.other": "Imported {count} orders.",
    "import.existing.one": " 1 was imported before and left as it is.",
    "import.existing.other": " {count} were imported before and left as they are.",
    "import.errors.one": "1 row has a problem:",
    "import.errors.other": "{count} rows have problems:",
    "import.row": "row {row}: {problem}",
    "import.not_csv": "Please send a .csv file (as a document).",
    "invite.usage": "Write /invite driver or /invite dispatcher.",
    "invite.usage_owner": "Write /invite driver, /invite dispatcher or /invite owner.",
    "invite.created": "Invite for a new {role} (valid {valid}, single use):\n{link}",
    "time.days.one": "1 day",
    "time.days.other": "{count} days",
    "invite.no_username": "Set TELEGRAM_BOT_USERNAME so I can build invite links.",
    # new order conversation
    "neworder.name": "New order. Customer's name?",
    "neworder.phone": "Customer's phone number (with country code), or /skip.",
    "neworder.address": "Delivery address? Type it, or send a location pin.",
    "neworder.choose": "Which one is it?",
    "neworder.no_match": "I found no place for {text!r}. Check it, or send a location pin.",
    "neworder.window": "Time window, like 14:00-16:00 (today) or {example} 9-12, or /skip.",
    "neworder.size": "Size: weight in kg, like 3.5, or /skip.",
    "neworder.notes": "Notes for the driver, or /skip.",
    "neworder.summary": (
        "Check the order:\n{name}{phone}\n{address}\n{window}{size}{notes}\nCreate it?"
    ),
    "neworder.address_pin": "📍 Dropped pin",
    "neworder.created": (
        "Order {ref} created.\nTracking: {link}\nCustomer's link for chat updates: {subscribe}"
    ),
    "neworder.cancelled": "Order not created.",
    "neworder.bad_window": (
        "{text!r} is not a time window. Write it like 14:00-16:00 or {example} 9-12."
    ),
    "neworder.window_past": "{text!r} is over already; give a time window in the future.",
    "neworder.bad_size": "{text!r} is not a weight. Write a number of kg like 3.5.",
    "neworder.bad_text": "Please answer with text.",
    "conversation.expired": (
        "That conversation has expired, so I did not keep this. Please start it again."
    ),
    "finish_first": "First finish what we started, or /cancel it.",
    "neworder.invalid": "The order is not complete: {problems}. Tap “Start over”.",
    "neworder.too_long": "That is too long ({limit} characters at most).",
    # tracking page
    "tracking.unknown": (
        "This tracking link does not exist. Check it, or ask the shop for a new one."
    ),
    "tracking.expired": "This delivery is finished and its tracking page has expired.",
    "page.title": "Your delivery {ref}",
    "page.step.confirmed": "Confirmed",
    "page.step.on_the_way": "On the way",
    "page.step.nearby": "Nearly there",
    "page.step.arrived": "At your door",
    "page.step.delivered": "Delivered",
    "page.step.failed": "Not delivered",
    "page.step.rescheduled": "Rescheduled",
    "page.step.returned": "Returned to sender",
    "page.step.cancelled": "Cancelled",
    "page.arriving": "Arriving",
    "page.window": "Delivery window",
    "page.distance": "Distance",
    "page.driver": "Your driver",
    "page.rate": "How was your delivery?",
    "page.comment": "Anything to add? (optional)",
    "page.send": "Send",
    "page.thanks": "Thanks for your rating!",
    "page.proof": "Proof of delivery",
    "page.signature": "Signature",
    "page.subscribe": "Get updates in Telegram",
    "page.subscribe_whatsapp": "Get updates in WhatsApp",
    "fallback.unknown": "I did not understand that.",
    "here.done": "OK: your updates come to this chat from now on.",
    "fallback.unsupported": (
        "I cannot read this kind of message. Please write text, or send a photo, a document or"
        " a location."
    ),
    "cancelled": "OK, cancelled. Nothing was changed.",
    "error.generic": "Something went wrong on our side; nothing was changed. Please try again.",
    "error.unreadable": (
        "Your message has characters I cannot read (such as a NUL); nothing was saved. "
        "Please type it again."
    ),
    "error.unavailable": (
        "We have a problem on our side right now. Your message is not lost: it will be handled"
        " as soon as it is fixed, no need to send it again."
    ),
    # --- reports (core/reports/periods.py) ---
    "report.title": "📊 Report for {period}",
    "report.compared.day": "(arrows: against the average of the 7 days before)",
    "report.compared.week": "(arrows: against the week before)",
    "report.compared.days": "(arrows: against the 7 days before)",
    "report.trend": " {arrow} {before}",
    "report.delivered": "✅ Delivered: {value}",
    "report.failed": "❌ Failed attempts: {value}",
    "report.reasons": " ({reasons})",
    "report.reason": "{reason}: {count}",
    "report.other_reason": "other",
    "report.on_time": "⏱ On time: {value} ({count} of {of})",
    "report.first_attempt": "🎯 First attempt: {value} ({count} of {of} finished)",
    "report.delivery_time": "🕒 Order to door: {average} on average, 90% within {p90}",
    "report.out_time": "🚚 Out for delivery to door: {average} on average, 90% within {p90}",
    "report.per_shift": "👷 Deliveries per shift: {value} ({shifts} shifts, {hours} h)",
    "report.per_hour": "⚡ Deliveries per hour on shift: {value}",
    "report.driving": ("🛣 Driven: {drive}, {km} km (planned: {planned_drive}, {planned_km} km)"),
    "report.rating": "⭐ Rating: {value} ({share} of deliveries rated)",
    "report.lost": "📭 Notifications not delivered: {value}",
    "report.open": "📦 Still open: {value}",
    "report.drivers": "Drivers:",
    "report.driver": "• {name}: {delivered} delivered, {shifts} shifts, {hours} h, {km} km",
    "report.more_drivers.one": "… and 1 more driver (see the chart and the CSV)",
    "report.more_drivers.other": "… and {count} more drivers (see the chart and the CSV)",
    "report.bad_period": (
        "{text!r} is not a period: use today, yesterday, 7d, a date like 2026-12-07 or a week "
        "like 2026-W49."
    ),
    "report.bad_week": "{text!r} is not a week: write it like 2026-W49.",
    "report.bad_date": "{text!r} is not a day: write it like 2026-12-07, or today or yesterday.",
    "report.date_or_week": "Give --date or --week, not both.",
    # --- pushed reports and exception alerts (issue 12, push) ---
    "msg.owner.report": "{text}",  # the report's text, worded by core.reports.periods
    "msg.owner.report_chart": "📊 {period}",
    "msg.owner.report_csv": "🗂 {period}: every order in a spreadsheet (CSV)",
    "action.reports.off": "Stop daily reports",
    "msg.dispatcher.order_unassigned_soon": "⏰ Order {ref} still has no driver.{window_line}",
    "msg.dispatcher.driver_idle.one": (
        "💤 {driver} is on shift with no stops while {count} order waits for a driver. "
        "/dispatch assigns it."
    ),
    "msg.dispatcher.driver_idle.other": (
        "💤 {driver} is on shift with no stops while {count} orders wait for a driver. "
        "/dispatch assigns them."
    ),
    "command.reports": "Daily reports on or off",
    "reports.now_on": (
        "You get the day's report every day at {at} (on Mondays the last week's too). "
        "/reports off stops them."
    ),
    "reports.now_off": "Daily reports are off. /reports on starts them again.",
    "reports.usage": "Say /reports on or /reports off (not {text!r}).",
    "reports.owners_only": "Only owners get the pushed reports.",
}
