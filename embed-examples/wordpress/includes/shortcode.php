<?php
/**
 * [portal_app app="kb"]: one of the help desk's apps in an iframe, in the page's content.
 *
 *   app     kb | chat | form | tickets            (default kb)
 *   id      the form's id, for app="form"         (the help desk's Admin > Apps lists them)
 *   lang    the help center's language, for kb    (default: the visitor's)
 *   height  the frame's first height in pixels    (default 480; then it takes its content's)
 *   title   the frame's accessible title
 *
 * The app's page is its `?embed=1` variant (no site chrome), which reports its height by
 * postMessage; a few lines added once per page size the frame to it, trusting only messages from
 * the help desk's origin. Add this site under the help desk's Admin > Chat settings > "Sites
 * that may embed", or browsers refuse the frame.
 */

defined( 'ABSPATH' ) || exit;

const PORTAL_WIDGET_FRAMES_HANDLE = 'portal-widget-frames';

/** The path of an app's embed variant on the help desk, or '' for an unknown app. */
function portal_widget_app_path( $app, $id, $lang ) {
	switch ( $app ) {
		case 'kb':
			return '' !== $lang ? '/kb/' . rawurlencode( $lang ) . '/?embed=1' : '/kb/?embed=1';
		case 'chat':
			return '/messenger?embed=1';
		case 'form':
			return $id > 0 ? '/forms/' . $id . '?embed=1' : '';
		case 'tickets':
			return '/portal?embed=1';
	}
	return '';
}

function portal_widget_app_title( $app ) {
	$titles = array(
		'kb'      => __( 'Help center', 'portal-widget' ),
		'chat'    => __( 'Chat', 'portal-widget' ),
		'form'    => __( 'Contact us', 'portal-widget' ),
		'tickets' => __( 'My tickets', 'portal-widget' ),
	);
	return isset( $titles[ $app ] ) ? $titles[ $app ] : '';
}

function portal_widget_shortcode( $atts ) {
	$atts     = shortcode_atts(
		array(
			'app'    => 'kb',
			'id'     => '',
			'lang'   => '',
			'height' => '480',
			'title'  => '',
		),
		$atts,
		'portal_app'
	);
	$settings = portal_widget_settings();
	$origin   = portal_widget_origin( $settings['host'] );
	$app      = strtolower( trim( (string) $atts['app'] ) );
	$lang     = preg_match( '/^[a-z]{2,3}(-[a-z0-9]{2,8})?$/i', (string) $atts['lang'] ) ? strtolower( $atts['lang'] ) : '';
	$path     = portal_widget_app_path( $app, absint( $atts['id'] ), $lang );
	if ( '' === $origin || '' === $path ) {
		if ( ! current_user_can( 'edit_posts' ) ) {
			return '';
		}
		$why = '' === $origin
			? __( 'Set the support host under Settings > Help widget.', 'portal-widget' )
			: __( 'Use app="kb", "chat", "tickets", or "form" with the form\'s id="…".', 'portal-widget' );
		/* translators: %s: what to do. Shown to editors only, where the frame would be. */
		return '<p class="portal-app-error">' . esc_html( sprintf( __( '[portal_app] shows nothing here: %s', 'portal-widget' ), $why ) ) . '</p>';
	}
	$height = min( 4000, max( 100, absint( $atts['height'] ) ) );
	$title  = '' !== trim( (string) $atts['title'] ) ? (string) $atts['title'] : portal_widget_app_title( $app );

	if ( ! wp_script_is( PORTAL_WIDGET_FRAMES_HANDLE, 'registered' ) ) {
		wp_register_script( PORTAL_WIDGET_FRAMES_HANDLE, false, array(), null, true );
		wp_add_inline_script(
			PORTAL_WIDGET_FRAMES_HANDLE,
			sprintf(
				'addEventListener("message",function(e){if(e.origin!==%s||!e.data||e.data.type!=="portal:height")return;var h=Math.min(Math.max(e.data.height|0,100),10000);document.querySelectorAll("iframe[data-portal-frame]").forEach(function(f){if(f.contentWindow===e.source)f.style.height=h+"px"})});',
				portal_widget_js( $origin )
			)
		);
	}
	wp_enqueue_script( PORTAL_WIDGET_FRAMES_HANDLE );

	return sprintf(
		'<iframe class="portal-app portal-app-%1$s" src="%2$s" title="%3$s" loading="lazy" style="width:100%%;height:%4$dpx;border:0" data-portal-frame></iframe>',
		esc_attr( $app ),
		esc_url( $origin . $path ),
		esc_attr( $title ),
		$height
	);
}
add_shortcode( 'portal_app', 'portal_widget_shortcode' );
