<?php
/**
 * The plugin's one option, `portal_widget_settings` (an array), read with defaults and cleaned on
 * every save: what is stored is always something the front end may use. The front end still
 * checks what it reads and escapes what it prints: an option may have been written by other code.
 */

defined( 'ABSPATH' ) || exit;

const PORTAL_WIDGET_OPTION   = 'portal_widget_settings';
const PORTAL_WIDGET_GROUP    = 'portal_widget';
const PORTAL_WIDGET_PAGES    = array( 'all', 'front', 'chosen' );
const PORTAL_WIDGET_SIDES    = array( '', 'right', 'left' ); // '': as set in the help desk's admin
const PORTAL_WIDGET_KID_RE   = '/^[A-Za-z0-9._-]{1,64}$/'; // as the help desk's admin makes them
const PORTAL_WIDGET_COLOR_RE = '/^#[0-9a-f]{6}$/';

/** What a site has before anyone saved the settings. */
function portal_widget_defaults() {
	return array(
		'host'     => '',      // the help desk's origin: https://support.example.com
		'pages'    => 'all',   // all | front | chosen
		'page_ids' => array(), // the chosen pages (ids)
		'position' => '',      // '' | right | left
		'color'    => '',      // '' | #rrggbb: the launcher's colour instead of the help desk's
		'kid'      => '',      // the identity key's id, from the help desk's admin
		'secret'   => '',      // its HS256 secret (never printed)
	);
}

/** The settings as stored, every key present and of its type. */
function portal_widget_settings() {
	$stored = get_option( PORTAL_WIDGET_OPTION, array() );
	$stored = is_array( $stored ) ? $stored : array();
	$out    = array();
	foreach ( portal_widget_defaults() as $key => $default ) {
		$value       = array_key_exists( $key, $stored ) ? $stored[ $key ] : $default;
		$out[ $key ] = is_array( $default )
			? array_values( array_filter( array_map( 'absint', (array) $value ) ) )
			: ( is_scalar( $value ) ? (string) $value : $default );
	}
	return $out;
}

/**
 * The origin (`https://host[:port]`) a support host names, or '' when it names none.
 * "support.example.com" means https; a path, query, fragment or user name is refused.
 */
function portal_widget_origin( $host ) {
	$host = trim( (string) $host );
	if ( '' === $host || preg_match( '/[\s"\'<>\\\\]/', $host ) ) {
		return '';
	}
	if ( ! preg_match( '#^[a-z][a-z0-9+.-]*://#i', $host ) ) {
		$host = 'https://' . $host;
	}
	$parts = wp_parse_url( $host );
	if ( ! is_array( $parts ) || empty( $parts['host'] ) ) {
		return '';
	}
	$scheme = strtolower( isset( $parts['scheme'] ) ? $parts['scheme'] : '' );
	$name   = strtolower( $parts['host'] );
	$path   = isset( $parts['path'] ) ? $parts['path'] : '';
	if ( ! in_array( $scheme, array( 'http', 'https' ), true )
		|| ! preg_match( '/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/', $name )
		|| ( '' !== $path && '/' !== $path )
		|| isset( $parts['query'] ) || isset( $parts['fragment'] )
		|| isset( $parts['user'] ) || isset( $parts['pass'] ) ) {
		return '';
	}
	$port = isset( $parts['port'] ) ? (int) $parts['port'] : 0;
	if ( $port < 0 || $port > 65535 ) {
		return '';
	}
	return $scheme . '://' . $name . ( $port ? ':' . $port : '' );
}

/** '#rrggbb' (lower case; '#abc' grows to '#aabbcc'), or '' for anything else. */
function portal_widget_color( $color ) {
	$color = strtolower( trim( (string) $color ) );
	if ( preg_match( '/^#[0-9a-f]{3}$/', $color ) ) {
		$color = '#' . $color[1] . $color[1] . $color[2] . $color[2] . $color[3] . $color[3];
	}
	return preg_match( PORTAL_WIDGET_COLOR_RE, $color ) ? $color : '';
}

/** Whether a secret looks like one: printable ASCII, 16 to 512 characters. */
function portal_widget_secret_ok( $secret ) {
	return is_string( $secret ) && 1 === preg_match( '/^[\x21-\x7E]{16,512}$/', $secret );
}

/**
 * register_setting's sanitize_callback: what a save (the settings page, or update_option from
 * code) may store. A bad value is refused with a notice and the stored one kept; an empty
 * secret keeps the stored secret (the page never shows it) unless "forget" is ticked.
 * WordPress may run this twice on one save: it must give the same result for its own output.
 */
function portal_widget_sanitize( $input ) {
	$old   = portal_widget_settings();
	$input = is_array( $input ) ? wp_unslash( $input ) : array();
	$out   = $old;

	if ( array_key_exists( 'host', $input ) ) {
		$host   = is_string( $input['host'] ) ? trim( $input['host'] ) : '';
		$origin = portal_widget_origin( $host );
		if ( '' === $host || '' !== $origin ) {
			$out['host'] = $origin;
		} else {
			portal_widget_refuse( 'host', __( 'The support host must be a host name such as support.example.com, or an address such as https://support.example.com.', 'portal-widget' ) );
		}
	}
	if ( array_key_exists( 'pages', $input ) ) {
		if ( in_array( $input['pages'], PORTAL_WIDGET_PAGES, true ) ) {
			$out['pages'] = $input['pages'];
		} else {
			portal_widget_refuse( 'pages', __( 'Choose where the launcher shows.', 'portal-widget' ) );
		}
	}
	if ( array_key_exists( 'page_ids', $input ) || array_key_exists( 'pages', $input ) ) {
		// Unticking every page sends no page_ids at all: a form's save means "none".
		$ids             = isset( $input['page_ids'] ) ? (array) $input['page_ids'] : array();
		$out['page_ids'] = array_values( array_unique( array_filter( array_map( 'absint', $ids ) ) ) );
	}
	if ( array_key_exists( 'position', $input ) ) {
		if ( in_array( $input['position'], PORTAL_WIDGET_SIDES, true ) ) {
			$out['position'] = $input['position'];
		} else {
			portal_widget_refuse( 'position', __( 'Choose a side for the launcher.', 'portal-widget' ) );
		}
	}
	if ( array_key_exists( 'color', $input ) ) {
		$color = is_string( $input['color'] ) ? trim( $input['color'] ) : '';
		if ( '' === $color || '' !== portal_widget_color( $color ) ) {
			$out['color'] = portal_widget_color( $color );
		} else {
			portal_widget_refuse( 'color', __( 'The colour must be written #rrggbb, such as #1f6feb, or left empty.', 'portal-widget' ) );
		}
	}
	if ( ! empty( $input['forget_key'] ) ) {
		$out['kid']    = '';
		$out['secret'] = '';
		return $out;
	}
	if ( array_key_exists( 'kid', $input ) ) {
		$kid = is_string( $input['kid'] ) ? trim( $input['kid'] ) : '';
		if ( '' === $kid || preg_match( PORTAL_WIDGET_KID_RE, $kid ) ) {
			$out['kid'] = $kid;
		} else {
			portal_widget_refuse( 'kid', __( 'The key id is 1 to 64 letters, digits, dots, - or _, as the help desk shows it.', 'portal-widget' ) );
		}
	}
	$secret = isset( $input['secret'] ) && is_string( $input['secret'] ) ? trim( $input['secret'] ) : '';
	if ( '' !== $secret ) {
		if ( portal_widget_secret_ok( $secret ) ) {
			$out['secret'] = $secret;
		} else {
			portal_widget_refuse( 'secret', __( 'The secret is 16 to 512 characters with no spaces: paste it as the help desk showed it.', 'portal-widget' ) );
		}
	}
	return $out;
}

function portal_widget_refuse( $field, $message ) {
	if ( function_exists( 'add_settings_error' ) ) {
		add_settings_error( PORTAL_WIDGET_OPTION, 'portal_widget_' . $field, $message );
	}
}

// Registered on every request, not only in the admin: update_option from any code is cleaned too.
add_action(
	'init',
	function () {
		register_setting(
			PORTAL_WIDGET_GROUP,
			PORTAL_WIDGET_OPTION,
			array(
				'type'              => 'object',
				'sanitize_callback' => 'portal_widget_sanitize',
				'default'           => portal_widget_defaults(),
				'show_in_rest'      => false, // it holds the secret
			)
		);
	}
);
