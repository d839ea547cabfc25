<?php
/**
 * Plugin Name:       Portal Help Widget
 * Description:       Puts your help desk's widget on your site, signs your logged-in users in to it so they reach "My tickets" at once, and embeds one app in a page with [portal_app app="kb"].
 * Version:           1.0.0
 * Requires at least: 6.0
 * Requires PHP:      7.4
 * License:           MIT
 * Text Domain:       portal-widget
 *
 * The parts:
 *   includes/settings.php   the one option (an array), read with defaults and cleaned on save
 *   includes/identity.php   the HS256 token for a logged-in user, and a REST route that renews it
 *   includes/frontend.php   the snippet on the pages chosen (wp_enqueue_script, async)
 *   includes/shortcode.php  [portal_app]: one app in an iframe that takes its content's height
 *   includes/admin.php      Settings > Help widget (the Settings API: nonce, capability, notices)
 */

defined( 'ABSPATH' ) || exit;

define( 'PORTAL_WIDGET_VERSION', '1.0.0' );
define( 'PORTAL_WIDGET_FILE', __FILE__ );

require_once __DIR__ . '/includes/settings.php';
require_once __DIR__ . '/includes/identity.php';
require_once __DIR__ . '/includes/frontend.php';
require_once __DIR__ . '/includes/shortcode.php';

if ( is_admin() ) {
	require_once __DIR__ . '/includes/admin.php';
}
