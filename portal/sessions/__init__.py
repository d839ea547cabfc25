"""Sign-in sessions, staff and customers alike, in one place.

- `store`: the server-side session rows (start, check, end, end all) both kinds share.
- `staff`: the agents' and admins' cookie (`portal_agent`) and the signed-in agent.
- `customer`: the customers' cookie (`portal_customer`), in frames too, and the signed-in customer.

What guards a page with them lives with its app: `portal.admin.auth.require_agent`,
`portal.customer.pages.require_customer`.
"""
