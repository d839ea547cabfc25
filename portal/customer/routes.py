"""The customer portal's route table: magic-link sign-in, tickets, live updates, ratings."""

from starlette.routing import BaseRoute, Route

from portal.customer import auth, live, rating, tickets

routes: list[BaseRoute] = [
    Route("/portal", tickets.portal_home, name="customer_home"),
    Route("/portal/", tickets.portal_home, name="customer_home_slash"),
    Route("/portal/sign-in", auth.sign_in_page, methods=["GET", "POST"], name="customer_sign_in"),
    Route(
        "/portal/sign-in/code", auth.sign_in_code, methods=["POST"], name="customer_sign_in_code"
    ),
    Route(
        "/portal/sign-in/{token}",
        auth.magic_link,
        methods=["GET", "POST"],
        name="customer_magic_link",
    ),
    Route("/portal/sign-out", auth.sign_out_endpoint, methods=["POST"], name="customer_sign_out"),
    Route(
        "/portal/sign-out-everywhere",
        auth.sign_out_everywhere,
        methods=["POST"],
        name="customer_sign_out_everywhere",
    ),
    Route("/portal/tickets", tickets.ticket_list, name="customer_tickets"),
    Route("/portal/tickets/{id:int}", tickets.ticket_detail, name="customer_ticket"),
    Route(
        "/portal/tickets/{id:int}/replies",
        tickets.add_reply,
        methods=["POST"],
        name="customer_reply",
    ),
    Route(
        "/portal/tickets/{id:int}/rating",
        tickets.rate_from_portal,
        methods=["POST"],
        name="customer_rate_ticket",
    ),
    Route("/portal/tickets/{id:int}/events", live.ticket_events, name="customer_ticket_events"),
    Route("/portal/attachments/{id:int}", tickets.attachment, name="customer_attachment"),
    Route(
        "/portal/rate/{token}", rating.rate_link, methods=["GET", "POST"], name="customer_rate_link"
    ),
]
