<?php
/**
 * Identity: a logged-in WordPress user reaches the help desk signed in, straight to "My tickets".
 *
 * The help desk's admin (Widget > Identity) makes an HS256 key: a key id (kid) and a secret,
 * shown once. The company pastes both into Settings > Help widget. For a logged-in user this
 * file signs, on this server, a short-lived JWT the help desk's `POST /widget/identify` accepts:
 *
 *   header  {"alg":"HS256","typ":"JWT","kid":KID}
 *   claims  {"external_id": the user's id (a string), "email", "name", "iat", "exp"}
 *
 * The help desk takes the algorithm from the key the kid names, wants `exp` at most 24 hours
 * after `iat`, and finds the customer by external_id first (then by email). The secret never
 * leaves this server; the page carries only the token. A token lives an hour; the widget asks
 * the REST route below for a new one shortly before it expires (only if the page is still open).
 */

defined( 'ABSPATH' ) || exit;

const PORTAL_WIDGET_TOKEN_LIFETIME = HOUR_IN_SECONDS; // the help desk accepts at most a day

function portal_widget_base64url( $bytes ) {
	return rtrim( strtr( base64_encode( $bytes ), '+/', '-_' ), '=' ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode -- JWT encoding
}

/**
 * The signed token naming $user, or '' when no key is set (or the claims cannot be encoded).
 *
 * @param WP_User  $user     the logged-in user.
 * @param array    $settings portal_widget_settings().
 * @param int|null $now      seconds since 1970; now when null.
 */
function portal_widget_token( $user, $settings, $now = null ) {
	if ( ! ( $user instanceof WP_User ) || ! $user->exists()
		|| ! preg_match( PORTAL_WIDGET_KID_RE, $settings['kid'] )
		|| ! portal_widget_secret_ok( $settings['secret'] ) ) {
		return '';
	}
	$now    = null === $now ? time() : (int) $now;
	$claims = array(
		'external_id' => (string) $user->ID,
		'email'       => (string) $user->user_email,
		'name'        => (string) $user->display_name,
		'iat'         => $now,
		'exp'         => $now + PORTAL_WIDGET_TOKEN_LIFETIME,
	);
	/**
	 * Filters the claims signed for a user: for example an external_id your other systems use
	 * for the same person. Keep `iat` and `exp` numbers, at most 24 hours apart.
	 */
	$claims = apply_filters( 'portal_widget_identity_claims', $claims, $user );
	$header = wp_json_encode(
		array(
			'alg' => 'HS256',
			'typ' => 'JWT',
			'kid' => $settings['kid'],
		)
	);
	$body   = wp_json_encode( $claims );
	if ( false === $header || false === $body ) {
		return '';
	}
	$input = portal_widget_base64url( $header ) . '.' . portal_widget_base64url( $body );
	return $input . '.' . portal_widget_base64url( hash_hmac( 'sha256', $input, $settings['secret'], true ) );
}

/** The REST route the widget asks for a fresh token: `{"token": JWT}` for the logged-in user. */
function portal_widget_rest_token() {
	$token = portal_widget_token( wp_get_current_user(), portal_widget_settings() );
	if ( '' === $token ) {
		return new WP_Error( 'portal_widget_no_key', __( 'No identity key is set.', 'portal-widget' ), array( 'status' => 404 ) );
	}
	// WordPress itself sends no-cache headers with every answer to a logged-in user.
	return new WP_REST_Response( array( 'token' => $token ) );
}

add_action(
	'rest_api_init',
	function () {
		register_rest_route(
			'portal-widget/v1',
			'/token',
			array(
				'methods'             => 'POST', // never cached, and the REST nonce is required
				'callback'            => 'portal_widget_rest_token',
				'permission_callback' => 'is_user_logged_in',
			)
		);
	}
);
