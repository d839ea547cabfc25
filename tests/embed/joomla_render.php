<?php
/*
 * Renders mod_portalwidget as its dispatcher does, with no Joomla: `php joomla_render.php MODULE`
 * with JSON on standard input, either {"options": {...}, "language": "en-GB"} (the helper makes
 * the layout's data, then tmpl/default.php prints it) or {"portal": {...}} (the template alone,
 * with data made up by the test). The one stub: _JEXEC, which every Joomla file checks.
 */

define( '_JEXEC', 1 );

$module = rtrim( $argv[1], '/' );
require $module . '/src/Helper/PortalWidgetHelper.php';

use Portal\Module\PortalWidget\Site\Helper\PortalWidgetHelper;

$input = json_decode( stream_get_contents( STDIN ), true );
$portal = array_key_exists( 'portal', $input )
	? $input['portal']
	: PortalWidgetHelper::data( $input['options'], $input['language'] ?? '' );
if ( null === $portal ) {
	exit( 0 ); // the dispatcher renders nothing
}
require $module . '/tmpl/default.php';
