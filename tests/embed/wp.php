<?php
/*
 * Runs PHP inside the test's WordPress, as WordPress's own code: `php wp.php ROOT [install]`
 * with the code on standard input (no `<?php`); prints what the code returns, as JSON.
 * `install` loads WordPress in installing mode (no tables yet), for wp_install(). The site's
 * address comes in WP_TEST_URL.
 * Used by tests/embed/conftest.py; no wp-cli needed.
 */

if ( PHP_SAPI !== 'cli' || $argc < 2 ) {
	exit( 2 );
}
define( 'ABSPATH', rtrim( $argv[1], '/' ) . '/' );
if ( isset( $argv[2] ) && 'install' === $argv[2] ) {
	define( 'WP_INSTALLING', true );
}
$parts                  = parse_url( getenv( 'WP_TEST_URL' ) );
$_SERVER['HTTP_HOST']   = $parts['host'] . ':' . $parts['port'];
$_SERVER['SERVER_NAME'] = $parts['host'];
$_SERVER['SERVER_PORT'] = $parts['port'];
$_SERVER['REQUEST_URI'] = '/';
$code                   = stream_get_contents( STDIN );

require ABSPATH . 'wp-load.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

$result = eval( $code );
echo "\n--JSON--\n" . json_encode( $result );
