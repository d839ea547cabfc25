"""The embedded core's knowledge base reads that every article page's first view makes."""

from portal.core.contract import ArticleDraft


async def test_translations_are_the_published_languages_of_a_slug_in_one_tenant(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    globex = await core.tenants.create_tenant("globex", "Globex")
    for language in ("nb", "en", "zh-Hans", "ja"):
        await core.kb.save_article(acme.id, ArticleDraft(language, "reset", "Reset", "Body"))
    await core.kb.save_article(acme.id, ArticleDraft("ar", "reset", "Draft", "Body", False))
    await core.kb.save_article(acme.id, ArticleDraft("en", "other", "Other", "Body"))
    await core.kb.save_article(globex.id, ArticleDraft("en", "reset", "Theirs", "Body"))
    found = await core.kb.translations(acme.id, "reset")
    assert [(a.language, a.tenant_id) for a in found] == [
        ("en", acme.id),
        ("ja", acme.id),
        ("nb", acme.id),
        ("zh-Hans", acme.id),
    ]
    assert await core.kb.translations(acme.id, "missing") == []
    assert await core.kb.translations(globex.id + 1, "reset") == []  # a tenant with no articles
