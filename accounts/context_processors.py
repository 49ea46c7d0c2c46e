from django.utils.functional import SimpleLazyObject


def clerk(request) -> dict:
    identity = getattr(request, "clerk", None)
    context = {"clerk_identity": identity}
    if identity is not None:
        from accounts.selectors import clerk_display_name_get

        # Lazy: only a page that shows the top bar asks Clerk (or the cache).
        context["clerk_display_name"] = SimpleLazyObject(
            lambda: clerk_display_name_get(clerk_user_id=identity.user_id, claims=identity.claims)
        )
    return context
