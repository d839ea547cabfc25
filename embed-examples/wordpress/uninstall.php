<?php
/**
 * Deleting the plugin deletes what it stored: its settings, the identity secret among them
 * (on every site of a network).
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

if ( is_multisite() ) {
	foreach ( get_sites( array( 'fields' => 'ids' ) ) as $portal_widget_site ) {
		switch_to_blog( $portal_widget_site );
		delete_option( 'portal_widget_settings' );
		restore_current_blog();
	}
} else {
	delete_option( 'portal_widget_settings' );
}
