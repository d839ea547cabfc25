<?php

/**
 * The module's output: the help desk's snippet, or one app in an iframe.
 *
 * $portal comes from PortalWidgetHelper::data(). Whatever it holds, every value printed here is
 * escaped for where it goes: htmlspecialchars in attributes, JSON that cannot close the script
 * element (JSON_HEX_*) in scripts, an integer for the height.
 *
 * @var array $portal
 */

\defined('_JEXEC') or die;

use Portal\Module\PortalWidget\Site\Helper\PortalWidgetHelper;

$json = static function ($value): string {
    return (string) json_encode($value, PortalWidgetHelper::JSON_FLAGS);
};
$attr = static function ($value): string {
    return htmlspecialchars((string) $value, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
};
?>
<?php if ($portal['mode'] === 'app') : ?>
<iframe class="portal-app" src="<?php echo $attr($portal['src']); ?>" title="<?php echo $attr($portal['title']); ?>" loading="lazy" style="width:100%;height:<?php echo (int) $portal['height']; ?>px;border:0" data-portal-frame></iframe>
<script><?php echo sprintf(PortalWidgetHelper::FRAMES_JS, $json($portal['origin'])); ?></script>
<?php else : ?>
<script><?php echo PortalWidgetHelper::QUEUE; ?>;<?php if (!empty($portal['style'])) : ?><?php echo sprintf(PortalWidgetHelper::STYLE_JS, $json($portal['style'])); ?><?php endif; ?></script>
<script async src="<?php echo $attr($portal['loader']); ?>"></script>
<?php endif; ?>
