def clerk(request) -> dict:
    return {"clerk_identity": getattr(request, "clerk", None)}
