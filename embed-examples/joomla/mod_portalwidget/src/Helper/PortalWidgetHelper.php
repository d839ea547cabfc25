<?php

/**
 * What the module prints, made from its options: the help desk's snippet (the queue, then the
 * loader, async) or one app in an iframe. Every value is checked here (the host must be an
 * origin, the colour #rrggbb, the rest one of a list) and escaped again by tmpl/default.php.
 *
 * `data()`, `origin()`, `color()` and `shows()` use nothing of Joomla: tests run them with
 * php-cli and no Joomla at all.
 */

namespace Portal\Module\PortalWidget\Site\Helper;

\defined('_JEXEC') or die;

use Joomla\CMS\Language\Text;

class PortalWidgetHelper
{
    /** The queue the help desk's snippet starts with: calls made before the loader runs wait in it. */
    public const QUEUE = 'window.PortalWidget=window.PortalWidget||function(){(PortalWidget.q=PortalWidget.q||[]).push(arguments)}';

    /** JSON that cannot end the script element it is printed in. */
    public const JSON_FLAGS = JSON_HEX_TAG | JSON_HEX_AMP | JSON_HEX_APOS | JSON_HEX_QUOT;

    public const APPS = ['kb', 'chat', 'form', 'tickets'];

    /**
     * The colour and side chosen here, laid over the help desk's own, through the loader's
     * `style` command. "left" and "right" mean what they mean in the help desk's admin: the
     * start and the end side (mirrored in right-to-left languages); the distance from the edge
     * stays the help desk's. %s: {"color": "#rrggbb", "position": "left" or "right"} as JSON,
     * each only when chosen.
     */
    public const STYLE_JS = 'PortalWidget("style",%s);';

    /** %s: the help desk's origin as JSON. Sizes [data-portal-frame] frames to their content. */
    public const FRAMES_JS = 'addEventListener("message",function(e){if(e.origin!==%s||!e.data||e.data.type!=="portal:height")return;var h=Math.min(Math.max(e.data.height|0,100),10000);document.querySelectorAll("iframe[data-portal-frame]").forEach(function(f){if(f.contentWindow===e.source)f.style.height=h+"px"})});';

    /** The launcher is printed once per page, however many copies of the module are published. */
    private static $launcherPrinted = false;

    /**
     * The layout's data for this page, or null where the module shows nothing.
     *
     * @param \Joomla\Registry\Registry                          $params the module's options
     * @param \Joomla\CMS\Application\CMSApplicationInterface     $app    the site application
     */
    public function getPortalData($params, $app): ?array
    {
        $options = [
            'host'       => (string) $params->get('host', ''),
            'mode'       => (string) $params->get('mode', 'launcher'),
            'pages'      => (string) $params->get('pages', 'all'),
            'menu_items' => (array) $params->get('menu_items', []),
            'position'   => (string) $params->get('position', ''),
            'color'      => (string) $params->get('color', ''),
            'app'        => (string) $params->get('app', 'kb'),
            'form_id'    => (int) $params->get('form_id', 0),
            'height'     => (int) $params->get('height', 480),
            'title'      => (string) $params->get('title', ''),
            'lang'       => (string) $params->get('lang', ''),
        ];
        if ($options['mode'] === 'app' && trim($options['title']) === '' && \in_array($options['app'], self::APPS, true)) {
            $options['title'] = Text::_('MOD_PORTALWIDGET_APP_' . strtoupper($options['app']));
        }
        $language = $app->getLanguage()->getTag();
        if ($options['mode'] !== 'app') {
            $menu = $app->getMenu();
            $active = $menu ? $menu->getActive() : null;
            $home = $menu ? $menu->getDefault($language) : null;
            $activeId = $active ? (int) $active->id : 0;
            $homeId = $home ? (int) $home->id : 0;
            if (self::$launcherPrinted || !self::shows($options['pages'], $options['menu_items'], $activeId, $homeId)) {
                return null;
            }
        }
        $data = self::data($options, $language);
        if ($data !== null && $data['mode'] === 'launcher') {
            self::$launcherPrinted = true;
        }
        return $data;
    }

    /**
     * What tmpl/default.php prints, from the options as plain values; null when they name no
     * valid help desk (or, for an app, no app).
     *
     * launcher: ['mode', 'queue', 'loader' (URL), 'style' (null or {color, position})]
     * app:      ['mode', 'src' (URL), 'title', 'height', 'origin']
     */
    public static function data(array $options, string $language = ''): ?array
    {
        $origin = self::origin($options['host'] ?? '');
        if ($origin === '') {
            return null;
        }
        $lang = self::language($language);
        if (($options['mode'] ?? 'launcher') === 'app') {
            $app = (string) ($options['app'] ?? 'kb');
            $appLang = self::language((string) ($options['lang'] ?? '')); // '': the visitor's
            $path = self::appPath($app, (int) ($options['form_id'] ?? 0), $appLang);
            if ($path === '') {
                return null;
            }
            $title = trim((string) ($options['title'] ?? ''));
            return [
                'mode'   => 'app',
                'src'    => $origin . $path,
                'title'  => $title !== '' ? $title : self::appTitle($app),
                'height' => min(4000, max(100, (int) ($options['height'] ?? 480))),
                'origin' => $origin,
            ];
        }
        $color = self::color($options['color'] ?? '');
        $side = \in_array($options['position'] ?? '', ['left', 'right'], true) ? $options['position'] : '';
        return [
            'mode'   => 'launcher',
            'queue'  => self::QUEUE,
            'loader' => $origin . '/widget.js' . ($lang !== '' ? '?lang=' . rawurlencode($lang) : ''),
            'style'  => array_filter(['color' => $color, 'position' => $side]) ?: null,
        ];
    }

    /** Whether the launcher shows on a page: all, the home menu item, or the items chosen. */
    public static function shows(string $pages, array $chosen, int $activeId, int $homeId): bool
    {
        switch ($pages) {
            case 'front':
                return $activeId !== 0 && $activeId === $homeId;
            case 'chosen':
                return $activeId !== 0 && \in_array($activeId, array_map('intval', $chosen), true);
            default:
                return true;
        }
    }

    /**
     * The origin (`https://host[:port]`) a support host names, or '' when it names none.
     * "support.example.com" means https; a path, query, fragment or user name is refused.
     */
    public static function origin(string $host): string
    {
        $host = trim($host);
        if ($host === '' || preg_match('/[\s"\'<>\\\\]/', $host)) {
            return '';
        }
        if (!preg_match('#^[a-z][a-z0-9+.-]*://#i', $host)) {
            $host = 'https://' . $host;
        }
        $parts = parse_url($host);
        if (!\is_array($parts) || empty($parts['host'])) {
            return '';
        }
        $scheme = strtolower($parts['scheme'] ?? '');
        $name = strtolower($parts['host']);
        $path = $parts['path'] ?? '';
        if (!\in_array($scheme, ['http', 'https'], true)
            || !preg_match('/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/', $name)
            || ($path !== '' && $path !== '/')
            || isset($parts['query']) || isset($parts['fragment'])
            || isset($parts['user']) || isset($parts['pass'])) {
            return '';
        }
        $port = (int) ($parts['port'] ?? 0);
        return $scheme . '://' . $name . ($port > 0 && $port < 65536 ? ':' . $port : '');
    }

    /** '#rrggbb' (lower case; '#abc' grows to '#aabbcc'), or '' for anything else. */
    public static function color(string $color): string
    {
        $color = strtolower(trim($color));
        if (preg_match('/^#[0-9a-f]{3}$/', $color)) {
            $color = '#' . $color[1] . $color[1] . $color[2] . $color[2] . $color[3] . $color[3];
        }
        return preg_match('/^#[0-9a-f]{6}$/', $color) ? $color : '';
    }

    /** A Joomla language tag as the help desk names languages: "nb" for nb-NO, or ''. */
    public static function language(string $tag): string
    {
        $language = strtolower(strtok($tag, '-_') ?: '');
        return preg_match('/^[a-z]{2,3}$/', $language) ? $language : '';
    }

    /** The path of an app's embed variant on the help desk, or '' for an unknown app. */
    public static function appPath(string $app, int $formId, string $lang): string
    {
        switch ($app) {
            case 'kb':
                return $lang !== '' ? '/kb/' . rawurlencode($lang) . '/?embed=1' : '/kb/?embed=1';
            case 'chat':
                return '/messenger?embed=1';
            case 'form':
                return $formId > 0 ? '/forms/' . $formId . '?embed=1' : '';
            case 'tickets':
                return '/portal?embed=1';
        }
        return '';
    }

    public static function appTitle(string $app): string
    {
        $titles = ['kb' => 'Help center', 'chat' => 'Chat', 'form' => 'Contact us', 'tickets' => 'My tickets'];
        return $titles[$app] ?? '';
    }
}
