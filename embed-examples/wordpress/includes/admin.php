<?php
/**
 * Settings > Help widget: the support host, where the launcher shows, its side and colour, and
 * the identity key. Built on the Settings API: the form posts to options.php, which checks the
 * nonce (settings_fields) and the capability (manage_options) and runs portal_widget_sanitize.
 * Every stored value printed here is escaped; the secret is never printed.
 */

defined( 'ABSPATH' ) || exit;

const PORTAL_WIDGET_PAGE = 'portal-widget';

add_action(
	'admin_menu',
	function () {
		add_options_page(
			__( 'Help widget', 'portal-widget' ),
			__( 'Help widget', 'portal-widget' ),
			'manage_options',
			PORTAL_WIDGET_PAGE,
			'portal_widget_settings_page'
		);
	}
);

add_filter(
	'plugin_action_links_' . plugin_basename( PORTAL_WIDGET_FILE ),
	function ( $links ) {
		$url = admin_url( 'options-general.php?page=' . PORTAL_WIDGET_PAGE );
		array_unshift( $links, '<a href="' . esc_url( $url ) . '">' . esc_html__( 'Settings', 'portal-widget' ) . '</a>' );
		return $links;
	}
);

add_action( 'admin_init', 'portal_widget_settings_fields' );

function portal_widget_settings_fields() {
	$page = PORTAL_WIDGET_PAGE;
	add_settings_section( 'portal_widget_where', __( 'The launcher', 'portal-widget' ), '__return_false', $page );
	add_settings_field( 'portal_widget_host', __( 'Support host', 'portal-widget' ), 'portal_widget_field_host', $page, 'portal_widget_where', array( 'label_for' => 'portal_widget_host' ) );
	add_settings_field( 'portal_widget_pages', __( 'Show it on', 'portal-widget' ), 'portal_widget_field_pages', $page, 'portal_widget_where' );
	add_settings_field( 'portal_widget_position', __( 'Side', 'portal-widget' ), 'portal_widget_field_position', $page, 'portal_widget_where', array( 'label_for' => 'portal_widget_position' ) );
	add_settings_field( 'portal_widget_color', __( 'Colour', 'portal-widget' ), 'portal_widget_field_color', $page, 'portal_widget_where', array( 'label_for' => 'portal_widget_color' ) );

	add_settings_section( 'portal_widget_identity', __( 'Signed-in users', 'portal-widget' ), 'portal_widget_identity_intro', $page );
	add_settings_field( 'portal_widget_kid', __( 'Key id (kid)', 'portal-widget' ), 'portal_widget_field_kid', $page, 'portal_widget_identity', array( 'label_for' => 'portal_widget_kid' ) );
	add_settings_field( 'portal_widget_secret', __( 'Secret', 'portal-widget' ), 'portal_widget_field_secret', $page, 'portal_widget_identity', array( 'label_for' => 'portal_widget_secret' ) );
}

function portal_widget_name( $key ) {
	return PORTAL_WIDGET_OPTION . '[' . $key . ']';
}

function portal_widget_field_host() {
	$settings = portal_widget_settings();
	printf(
		'<input type="text" class="regular-text code" id="portal_widget_host" name="%s" value="%s" placeholder="support.example.com" spellcheck="false">',
		esc_attr( portal_widget_name( 'host' ) ),
		esc_attr( $settings['host'] )
	);
	echo '<p class="description">' . esc_html__( 'Your help desk\'s address, as its Admin > Widget page shows it in the snippet.', 'portal-widget' ) . '</p>';
}

function portal_widget_field_pages() {
	$settings = portal_widget_settings();
	$choices  = array(
		'all'    => __( 'Every page', 'portal-widget' ),
		'front'  => __( 'The front page only', 'portal-widget' ),
		'chosen' => __( 'The pages chosen below', 'portal-widget' ),
	);
	echo '<fieldset><legend class="screen-reader-text">' . esc_html__( 'Show it on', 'portal-widget' ) . '</legend>';
	foreach ( $choices as $value => $label ) {
		printf(
			'<label><input type="radio" name="%s" value="%s"%s> %s</label><br>',
			esc_attr( portal_widget_name( 'pages' ) ),
			esc_attr( $value ),
			checked( $settings['pages'], $value, false ),
			esc_html( $label )
		);
	}
	echo '</fieldset>';
	$pages = get_pages(
		array(
			'sort_column' => 'menu_order,post_title',
			'post_status' => 'publish,private',
		)
	);
	if ( ! $pages ) {
		echo '<p class="description">' . esc_html__( 'There are no pages yet.', 'portal-widget' ) . '</p>';
		return;
	}
	echo '<fieldset class="portal-widget-pages" style="max-height:16em;overflow:auto;margin-top:.5em"><legend class="screen-reader-text">' . esc_html__( 'Pages', 'portal-widget' ) . '</legend>';
	foreach ( $pages as $page ) {
		printf(
			'<label><input type="checkbox" name="%s[]" value="%d"%s> %s</label><br>',
			esc_attr( portal_widget_name( 'page_ids' ) ),
			(int) $page->ID,
			checked( in_array( (int) $page->ID, $settings['page_ids'], true ), true, false ),
			esc_html( '' !== $page->post_title ? $page->post_title : sprintf( '#%d', $page->ID ) )
		);
	}
	echo '</fieldset>';
}

function portal_widget_field_position() {
	$settings = portal_widget_settings();
	$choices  = array(
		''      => __( 'As set in the help desk', 'portal-widget' ),
		'right' => __( 'Right (the end side)', 'portal-widget' ),
		'left'  => __( 'Left (the start side)', 'portal-widget' ),
	);
	printf( '<select id="portal_widget_position" name="%s">', esc_attr( portal_widget_name( 'position' ) ) );
	foreach ( $choices as $value => $label ) {
		printf( '<option value="%s"%s>%s</option>', esc_attr( $value ), selected( $settings['position'], $value, false ), esc_html( $label ) );
	}
	echo '</select>';
}

function portal_widget_field_color() {
	$settings = portal_widget_settings();
	printf(
		'<input type="text" class="code" id="portal_widget_color" name="%s" value="%s" placeholder="#1f6feb" size="8" maxlength="7" pattern="#?[0-9a-fA-F]{3}([0-9a-fA-F]{3})?">',
		esc_attr( portal_widget_name( 'color' ) ),
		esc_attr( $settings['color'] )
	);
	echo '<p class="description">' . esc_html__( 'The launcher\'s colour on this site, such as #1f6feb. Empty: your help desk\'s brand colour.', 'portal-widget' ) . '</p>';
}

function portal_widget_identity_intro() {
	echo '<p>' . esc_html__( 'Logged-in users of this site reach the help desk signed in, straight to their tickets. Make an HS256 key in your help desk (Admin > Widget > Identity) and paste its key id and secret here. The secret stays on this server: pages carry only a token signed with it, valid for an hour.', 'portal-widget' ) . '</p>';
}

function portal_widget_field_kid() {
	$settings = portal_widget_settings();
	printf(
		'<input type="text" class="regular-text code" id="portal_widget_kid" name="%s" value="%s" placeholder="hs-1a2b3c4d" spellcheck="false" autocomplete="off">',
		esc_attr( portal_widget_name( 'kid' ) ),
		esc_attr( $settings['kid'] )
	);
}

function portal_widget_field_secret() {
	$settings = portal_widget_settings();
	$stored   = '' !== $settings['secret'];
	printf(
		'<input type="password" class="regular-text code" id="portal_widget_secret" name="%s" value="" placeholder="%s" spellcheck="false" autocomplete="new-password">',
		esc_attr( portal_widget_name( 'secret' ) ),
		esc_attr( $stored ? __( 'A secret is stored; paste a new one to replace it', 'portal-widget' ) : __( 'Paste the secret', 'portal-widget' ) )
	);
	if ( $stored ) {
		printf(
			'<p><label><input type="checkbox" name="%s" value="1"> %s</label></p>',
			esc_attr( portal_widget_name( 'forget_key' ) ),
			esc_html__( 'Forget the key (users are no longer signed in to the help desk)', 'portal-widget' )
		);
	}
}

function portal_widget_settings_page() {
	if ( ! current_user_can( 'manage_options' ) ) {
		wp_die( esc_html__( 'Sorry, you are not allowed to manage these settings.', 'portal-widget' ), 403 );
	}
	echo '<div class="wrap"><h1>' . esc_html( get_admin_page_title() ) . '</h1>';
	// Saved notices and refusals: options-head.php prints them on every Settings page.
	echo '<form action="' . esc_url( admin_url( 'options.php' ) ) . '" method="post">';
	settings_fields( PORTAL_WIDGET_GROUP );
	do_settings_sections( PORTAL_WIDGET_PAGE );
	submit_button();
	echo '</form>';
	echo '<h2>' . esc_html__( 'One app in a page', 'portal-widget' ) . '</h2><p>' . esc_html__( 'Put a shortcode in any page or post:', 'portal-widget' ) . '</p>';
	echo '<p><code>[portal_app app="kb"]</code> <code>[portal_app app="chat"]</code> <code>[portal_app app="tickets"]</code> <code>[portal_app app="form" id="3"]</code></p>';
	echo '</div>';
}
