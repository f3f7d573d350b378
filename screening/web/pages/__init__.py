"""The console's pages, one module per resource: small module-level handlers over the
service layer (the CLI's checks, messages and operations), each finding what it works with
on request.app.state; templates hold no logic. Every page but /login needs a session; every
change is a POST with the session's CSRF token, is audited, and answers with a redirect (so
a reload never repeats it) or the form again with the error; a user (not an admin) sees
only their own extension. Database work runs on threads, never on the event loop."""

from __future__ import annotations

from starlette.routing import Route

from screening.web.pages import calls, dnd, home, lists, names, policies, session, transfer, users


def routes() -> list[Route]:
    return [
        Route("/login", session.login_form, methods=["GET"]),
        Route("/login", session.login, methods=["POST"]),
        Route("/logout", session.logout, methods=["POST"]),
        Route("/", home.home, methods=["GET"]),
        Route("/ext/{ext}", home.extension_page, methods=["GET"]),
        Route("/ext/{ext}/spam", home.spam, methods=["POST"]),
        Route("/lists/{kind}", lists.list_page, methods=["GET"]),
        Route("/lists/{kind}", lists.list_add, methods=["POST"]),
        Route("/lists/{kind}/{id}/remove", lists.list_remove, methods=["POST"]),
        Route("/calls", calls.calls_page, methods=["GET"]),
        Route("/names/{kind}", names.names_page, methods=["GET"]),
        Route("/names/{kind}", names.name_change, methods=["POST"]),
        Route("/names/{kind}/remove", names.name_change, methods=["POST"]),
        Route("/policies", policies.policies_page, methods=["GET"]),
        Route("/policies", policies.policy_set, methods=["POST"]),
        Route("/policies/remove", policies.policy_remove, methods=["POST"]),
        Route("/dnd", dnd.dnd_page, methods=["GET"]),
        Route("/dnd", dnd.dnd_add, methods=["POST"]),
        Route("/dnd/{id}/remove", dnd.dnd_remove, methods=["POST"]),
        Route("/dnd/manual/{ext}", dnd.dnd_manual, methods=["POST"]),
        Route("/transfer", transfer.transfer_page, methods=["GET"]),
        Route("/transfer/export.csv", transfer.export_csv, methods=["GET"]),
        Route("/transfer", transfer.import_csv, methods=["POST"]),
        Route("/transfer/{job}", transfer.import_progress, methods=["GET"]),
        Route("/users", users.users_page, methods=["GET"]),
        Route("/users", users.user_add, methods=["POST"]),
        Route("/users/remove", users.user_remove, methods=["POST"]),
        Route("/users/tokens/{id}/revoke", users.token_revoke, methods=["POST"]),
        Route("/audit", users.audit_page, methods=["GET"]),
    ]
