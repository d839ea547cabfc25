<?php
/**
 * The help desk's snippet on the pages chosen, as WordPress adds scripts:
 *
 *   <script id="portal-widget-js-before">window.PortalWidget=...queue...; [style] [identify]</script>
 *   <script async src="https://SUPPORT-HOST/widget.js?lang=en" id="portal-widget-js"></script>
 *
 * The loader goes through wp_enqueue_script with the `async` strategy (WordPress 6.3+; older
 * versions get the attribute from the script_loader_tag filter), so it is printed once however
 * many times a theme or plugin asks, and a caching or optimising plugin sees it as a script of
 * its own. What runs before it (the queue the loader empties, the launcher's colour and side,
 * and the signed-in user's token) is its `before` inline script; every value in it is JSON.
 */

defined( 'ABSPATH' ) || exit;

const PORTAL_WIDGET_HANDLE = 'portal-widget';
// The queue the help desk's snippet starts with: calls made before the loader runs wait in it.
const PORTAL_WIDGET_QUEUE = 'window.PortalWidget=window.PortalWidget||function(){(PortalWidget.q=PortalWidget.q||[]).push(arguments)};';
// A cookie of this site saying the widget was told who the visitor is: after a log out the next
// page tells the widget to sign them out too (someone else may use this browser next).
const PORTAL_WIDGET_IDENTIFIED_COOKIE = 'portal_widget_identified';

/*
 * The colour and side chosen here, laid over the help desk's own (its admin sets them for every
 * site; these are for this one), through the loader's `style` command. "left" and "right" mean
 * what they mean in the help desk's admin: the start and the end side of the page (mirrored in
 * right-to-left languages). The distance from the edge stays the one the help desk set.
 */
const PORTAL_WIDGET_STYLE_JS = 'PortalWidget("style",%s);';

/** A value as JavaScript: JSON that cannot end the script element it is printed in. */
function portal_widget_js( $value ) {
	return (string) wp_json_encode( $value, JSON_HEX_TAG | JSON_HEX_AMP | JSON_HEX_APOS | JSON_HEX_QUOT );
}

/** Whether the launcher shows on the page being served, by the settings (and a filter). */
function portal_widget_shows_here( $settings ) {
	switch ( $settings['pages'] ) {
		case 'front':
			$shows = is_front_page();
			break;
		case 'chosen':
			$shows = ! empty( $settings['page_ids'] ) && is_page( $settings['page_ids'] );
			break;
		default:
			$shows = true;
	}
	/** Filters whether the launcher shows on this page. */
	return (bool) apply_filters( 'portal_widget_show', $shows, $settings );
}

/** The site's language as the help desk names languages ("nb" for nb_NO), or ''. */
function portal_widget_language() {
	$language = strtolower( strtok( (string) get_locale(), '_' ) );
	/** Filters the language the widget speaks (a code such as "en"); '' leaves it to the help desk. */
	$language = (string) apply_filters( 'portal_widget_language', $language );
	return preg_match( '/^[a-z]{2,3}(-[a-z0-9]{2,8})?$/i', $language ) ? $language : '';
}

/** The loader's address on the help desk, or '' while no valid support host is set. */
function portal_widget_loader_url( $settings ) {
	$origin = portal_widget_origin( $settings['host'] );
	if ( '' === $origin ) {
		return '';
	}
	$language = portal_widget_language();
	return $origin . '/widget.js' . ( '' !== $language ? '?lang=' . rawurlencode( $language ) : '' );
}

function portal_widget_enqueue() {
	$settings = portal_widget_settings();
	$src      = portal_widget_loader_url( $settings );
	if ( '' === $src || ! portal_widget_shows_here( $settings ) ) {
		return;
	}
	$strategy = version_compare( get_bloginfo( 'version' ), '6.3', '>=' );
	wp_enqueue_script(
		PORTAL_WIDGET_HANDLE,
		$src,
		array(),
		null, // no ?ver=: the help desk revalidates the loader on every page load itself
		$strategy ? array(
			'strategy'  => 'async',
			'in_footer' => false,
		) : false
	);
	if ( ! $strategy ) {
		add_filter( 'script_loader_tag', 'portal_widget_async_tag', 10, 2 );
	}
	wp_add_inline_script( PORTAL_WIDGET_HANDLE, portal_widget_inline_js( $settings ), 'before' );
}
add_action( 'wp_enqueue_scripts', 'portal_widget_enqueue' );

/** Before WordPress 6.3 (no loading strategies): `async` on the loader's own tag. */
function portal_widget_async_tag( $tag, $handle ) {
	if ( PORTAL_WIDGET_HANDLE !== $handle ) {
		return $tag;
	}
	// The tag WordPress passes holds the `before` inline script too: only the one with a src.
	return preg_replace( '/<script(?![^>]*\sasync)(?=[^>]*\ssrc=)/', '<script async', $tag, 1 );
}

/** What runs before the loader: the queue, then the calls it will run once it is loaded. */
function portal_widget_inline_js( $settings ) {
	$js    = PORTAL_WIDGET_QUEUE;
	$style = array();
	if ( '' !== portal_widget_color( $settings['color'] ) ) {
		$style['color'] = portal_widget_color( $settings['color'] );
	}
	if ( in_array( $settings['position'], array( 'left', 'right' ), true ) ) {
		$style['position'] = $settings['position'];
	}
	if ( $style ) {
		$js .= sprintf( PORTAL_WIDGET_STYLE_JS, portal_widget_js( $style ) );
	}
	return $js . portal_widget_identity_js( $settings );
}

/**
 * For a logged-in user (and an identity key set): identify with a token signed here, renewed
 * through the REST route before it expires. For a visitor who is not logged in but was
 * identified on an earlier page: sign the widget out too.
 */
function portal_widget_identity_js( $settings ) {
	if ( '' === $settings['kid'] || '' === $settings['secret'] ) {
		return '';
	}
	$cookie = PORTAL_WIDGET_IDENTIFIED_COOKIE;
	if ( ! is_user_logged_in() ) {
		return sprintf(
			'if(/(^|;\s*)%1$s=1/.test(document.cookie)){document.cookie="%1$s=;path=/;max-age=0;samesite=lax";PortalWidget("logout")}',
			$cookie
		);
	}
	$token = portal_widget_token( wp_get_current_user(), $settings );
	if ( '' === $token ) {
		return '';
	}
	return sprintf(
		'document.cookie="%1$s=1;path=/;samesite=lax";(function(t,u,n){PortalWidget("identify",function(){if(t){var x=t;t="";return x}return fetch(u,{method:"POST",credentials:"same-origin",headers:{"X-WP-Nonce":n}}).then(function(r){if(!r.ok)throw new Error("PortalWidget: no new token ("+r.status+")");return r.json()}).then(function(d){return d.token})})})(%2$s,%3$s,%4$s);',
		$cookie,
		portal_widget_js( $token ),
		portal_widget_js( rest_url( 'portal-widget/v1/token' ) ),
		portal_widget_js( wp_create_nonce( 'wp_rest' ) )
	);
}
